use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct BenchSimulateArgs {}

pub async fn run(_args: BenchSimulateArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("`retail bench` for this part is not built yet")
}
