//! One module per subcommand. Each owns its clap arguments and a `run`.

pub mod bench;
pub mod bench_alerts;
pub mod bench_query;
pub mod bench_simulate;
pub mod bench_stream;
pub mod demo;
pub mod lake;
pub mod query;
pub mod serve;
pub mod simulate;
pub mod stream;
pub mod warehouse;

pub fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RETAIL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()).init();
}
