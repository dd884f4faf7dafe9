//! `retail warehouse init`: create or migrate every table, and (re)load the calendar dimension.

use crate::config::Config;
use anyhow::Context;
use chrono::{Datelike, NaiveDate};
use retail_warehouse::{dim_date, HolidayCalendar};

#[derive(clap::Args, Debug)]
pub struct WarehouseArgs {
    #[command(subcommand)]
    pub which: WarehouseCmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum WarehouseCmd {
    /// Create or migrate the schema (idempotent) and load dim_date.
    Init(InitArgs),
    /// List the tables and their row counts.
    Tables,
}

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// First day of dim_date (default: January 1st, two years ago).
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last day of dim_date (default: December 31st next year).
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Holiday calendar file, `YYYY-MM-DD Name` per line (default: US federal holidays).
    #[arg(long)]
    pub holidays: Option<std::path::PathBuf>,
}

pub async fn run(args: WarehouseArgs, config: &Config) -> anyhow::Result<()> {
    let wh = crate::wiring::open_warehouse_alone(config).await?;
    match args.which {
        WarehouseCmd::Init(a) => {
            let this_year = chrono::Utc::now().year();
            let from = a.from.unwrap_or_else(|| NaiveDate::from_ymd_opt(this_year - 2, 1, 1).expect("valid date"));
            let to = a.to.unwrap_or_else(|| NaiveDate::from_ymd_opt(this_year + 1, 12, 31).expect("valid date"));
            anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
            let cal = match &a.holidays {
                Some(p) => {
                    let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
                    HolidayCalendar::parse(&text).map_err(anyhow::Error::msg)?
                }
                // One more year: 1 January falling on a Saturday is observed on 31 December before it.
                None => HolidayCalendar::us_federal(from.year()..=to.year() + 1),
            };
            wh.init().await?;
            let dates = dim_date(from, to, &cal);
            // Empty store/product lists leave those dimensions as they are (they come from the catalog).
            wh.load_dimensions(&[], &[], &dates).await?;
            wh.flush().await?;
            eprintln!(
                "{} warehouse ready: {} tables, dim_date {from}..{to} ({} days, {} holidays)",
                wh.backend(),
                retail_warehouse::schema::TABLES.len(),
                dates.len(),
                dates.iter().filter(|d| d.is_holiday).count()
            );
        }
        WarehouseCmd::Tables => {
            for t in retail_warehouse::schema::TABLES {
                let r = wh.query(&format!("SELECT COUNT(*) AS n FROM {}", t.name)).await?;
                let n = r.rows.first().and_then(|r| r.first()).cloned().unwrap_or_default();
                println!("{:<20} {:>12}  {}", t.name, n.to_string(), t.doc);
            }
        }
    }
    Ok(())
}
