use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

pub async fn run(_args: BenchArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("`retail bench` is not built yet")
}
