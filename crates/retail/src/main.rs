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

/// How many nice levels below the processor's loop the async runtime's threads run when that
/// loop has the main thread (`retail stream`, `retail bench stream`). The runtime carries the
/// sink writes (warehouse inserts, lake files), which consume what the serial loop produces;
/// at equal priority a chunk's inserts took turns with the loop on its core and the pipeline
/// stalled behind them. 18 alternating rounds of `retail bench stream`: the lower priority won
/// 13, median +6..7 % events/s, cores 92 % busy against 90 %. Not where the loop is itself a
/// runtime task (`demo`), and the priority only matters under contention.
const RUNTIME_NICE_BESIDE_LOOP: i32 = 5;

/// Whether the command runs the stream processor's loop on the main thread (in `block_on`).
fn loop_on_main_thread(command: &Command) -> bool {
    matches!(command, Command::Stream(_) | Command::Bench(cmd::bench::BenchArgs { which: cmd::bench::BenchWhich::Stream(_) }))
}

fn runtime_for(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if loop_on_main_thread(command) {
        builder.on_thread_start(|| retail_lake::lower_thread_priority(RUNTIME_NICE_BESIDE_LOOP));
    }
    builder.build()
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
    let runtime = runtime_for(&cli.command).expect("tokio runtime");
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's nice value.
    fn own_nice() -> i32 {
        // SAFETY: plain system calls about the calling thread; no memory is passed.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    /// The nice value of a task's thread on the runtime `retail <args>` would build.
    fn runtime_nice(args: &[&str]) -> i32 {
        let cli = Cli::try_parse_from(args).expect("arguments parse");
        let runtime = runtime_for(&cli.command).expect("runtime");
        runtime.block_on(async { tokio::spawn(async { own_nice() }).await.expect("task runs") })
    }

    #[test]
    fn the_runtime_yields_to_the_stream_loop_only_where_that_loop_has_the_main_thread() {
        let base = own_nice();
        let lowered = (base + RUNTIME_NICE_BESIDE_LOOP).min(19);
        assert_eq!(runtime_nice(&["retail", "stream"]), lowered);
        assert_eq!(runtime_nice(&["retail", "bench", "stream"]), lowered);
        // `demo` runs the loop as a runtime task, `serve` has no loop: equal priorities.
        assert_eq!(runtime_nice(&["retail", "demo"]), base);
        assert_eq!(runtime_nice(&["retail", "serve"]), base);
        assert_eq!(runtime_nice(&["retail", "bench", "query"]), base);
    }
}
