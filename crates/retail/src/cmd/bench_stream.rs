use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct BenchStreamArgs {}

pub async fn run(_args: BenchStreamArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("`retail bench` for this part is not built yet")
}
