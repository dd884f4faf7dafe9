//! `retail`: one binary, one subcommand per service of the platform.

mod cmd;
mod config;
mod process_metrics;
mod wiring;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

// The stream processor allocates per record on hot paths (events, rows, Arrow buffers):
// mimalloc's thread-local free lists roughly halve the allocator's share versus glibc malloc.
// It is built without transparent huge pages (`no_thp`, workspace Cargo.toml): with them every
// fresh 2 MiB region the growing tables touch was zeroed whole by the kernel, a third of
// `retail bench stream`'s CPU (185 k → 250 k events/s without).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's option enum (v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc hands freed pages back to the OS 10 ms after they empty; the processor frees and
/// re-allocates batch-sized buffers every few milliseconds, so each batch paid page faults and
/// kernel page zeroing again (a third of its time in `retail bench stream`). Keep freed memory
/// mapped for reuse instead, unless `MIMALLOC_PURGE_DELAY` says otherwise.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide allocator option; mimalloc allows this at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

#[derive(Parser, Debug)]
#[command(name = "retail", version, about = "Retail inventory data platform: simulate → bus → stream → lake/warehouse → serve")]
pub struct Cli {
    /// Where the embedded bus, lake and warehouse live.
    #[arg(long, global = true, env = "RETAIL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A TOML configuration file (see README, "Configuration").
    #[arg(long, global = true, env = "RETAIL_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate POS events from the deterministic retail world model.
    Simulate(cmd::simulate::SimulateArgs),
    /// Run the stream processor (consumes the bus, fills lake and warehouse).
    Stream(cmd::stream::StreamArgs),
    /// Serve the live dashboard, JSON API and /metrics.
    Serve(cmd::serve::ServeArgs),
    /// Run the whole system in one process on embedded defaults.
    Demo(cmd::demo::DemoArgs),
    /// Run SQL against the configured warehouse.
    Query(cmd::query::QueryArgs),
    /// Warehouse administration (schema init/migrate, dimension load).
    Warehouse(cmd::warehouse::WarehouseArgs),
    /// Lake administration (compaction).
    Lake(cmd::lake::LakeArgs),
    /// Benchmarks: simulate, stream, query.
    Bench(cmd::bench::BenchArgs),
    /// Print the effective configuration (secrets redacted).
    Config,
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    cmd::init_tracing();
    let config = match config::Config::load(cli.config.as_deref(), cli.data_dir.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Simulate(a) => cmd::simulate::run(a, &config).await,
            Command::Stream(a) => cmd::stream::run(a, &config).await,
            Command::Serve(a) => cmd::serve::run(a, &config).await,
            Command::Demo(a) => cmd::demo::run(a, &config).await,
            Command::Query(a) => cmd::query::run(a, &config).await,
            Command::Warehouse(a) => cmd::warehouse::run(a, &config).await,
            Command::Lake(a) => cmd::lake::run(a, &config).await,
            Command::Bench(a) => cmd::bench::run(a, &config).await,
            Command::Config => {
                println!("{}", config.redacted_toml());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
