//! `retail lake …`: list the lake and compact a day's small raw files.

use crate::config::Config;
use chrono::NaiveDate;

#[derive(clap::Args, Debug)]
pub struct LakeArgs {
    #[command(subcommand)]
    pub which: LakeCmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum LakeCmd {
    /// List objects under a prefix (e.g. raw-data/sales/year=2025/).
    Ls {
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Merge a day's small raw files into one per kind (duplicates dropped).
    Compact {
        /// The day to compact; all days with raw data when omitted.
        #[arg(long)]
        day: Option<NaiveDate>,
    },
}

pub async fn run(args: LakeArgs, config: &Config) -> anyhow::Result<()> {
    let lake = crate::wiring::open_lake(config).await?;
    lake.check().await?;
    match args.which {
        LakeCmd::Ls { prefix } => {
            for o in lake.list(&prefix).await? {
                println!("{:>12}  {}  {}", o.size, o.last_modified.format("%Y-%m-%d %H:%M:%S"), o.key);
            }
        }
        LakeCmd::Compact { day } => {
            let days = match day {
                Some(d) => vec![d],
                None => {
                    let mut all = Vec::new();
                    for kind in retail_lake::RawKind::ALL {
                        all.extend(lake.raw_days(kind).await?);
                    }
                    all.sort();
                    all.dedup();
                    all
                }
            };
            for d in days {
                let r = lake.compact(d).await?;
                println!("{d}: files {} -> {}, rows {} -> {}", r.files_before, r.files_after, r.rows_before, r.rows_after);
            }
        }
    }
    Ok(())
}
