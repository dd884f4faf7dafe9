//! `retail query "SELECT …" [--format table|csv|json]`: SQL against the configured warehouse.

use crate::config::Config;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// The SQL (the portable subset runs on both backends; see docs/storage.md).
    pub sql: String,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub async fn run(args: QueryArgs, config: &Config) -> anyhow::Result<()> {
    let wh = crate::wiring::open_warehouse_alone(config).await?;
    let started = std::time::Instant::now();
    let result = wh.query(&args.sql).await?;
    match args.format {
        Format::Table => {
            print!("{}", result.to_table());
            eprintln!("{} in {:.1} ms", wh.backend(), started.elapsed().as_secs_f64() * 1000.0);
        }
        Format::Csv => print!("{}", result.to_csv()),
        Format::Json => println!("{}", result.to_json()),
    }
    Ok(())
}
