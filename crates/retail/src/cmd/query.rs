//! `retail query "SELECT …" [--format table|csv|json]`: SQL against the configured warehouse.

use crate::config::Config;
use anyhow::Context;
use std::sync::Arc;

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

/// The lake the configuration names.
pub fn open_lake(config: &Config) -> anyhow::Result<retail_lake::Lake> {
    let s3 = retail_lake::S3Options {
        endpoint: config.s3.endpoint.clone(),
        region: config.s3.region.clone(),
        access_key_id: config.s3.access_key_id.clone(),
        secret_access_key: config.s3.secret_access_key.clone(),
        virtual_hosted_style: config.s3.virtual_hosted_style,
        allow_http: config.s3.endpoint.starts_with("http://"),
    };
    Ok(retail_lake::Lake::open(&config.lake, &s3)?)
}

pub fn warehouse_options(config: &Config) -> retail_warehouse::WarehouseOptions {
    retail_warehouse::WarehouseOptions {
        user: config.clickhouse.user.clone(),
        password: config.clickhouse.password.clone(),
        database: config.clickhouse.database.clone(),
        ..Default::default()
    }
}

/// The warehouse the configuration names; the embedded one keeps its tables in the lake.
pub async fn open_warehouse(config: &Config) -> anyhow::Result<Arc<dyn retail_warehouse::Warehouse>> {
    let lake = if config.warehouse == "embedded" {
        let lake = open_lake(config)?;
        lake.check().await.with_context(|| format!("embedded warehouse needs the lake {}", config.lake))?;
        Some(lake)
    } else {
        None
    };
    Ok(retail_warehouse::open(&config.warehouse, &warehouse_options(config), lake).await?)
}

pub async fn run(args: QueryArgs, config: &Config) -> anyhow::Result<()> {
    let wh = open_warehouse(config).await?;
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
