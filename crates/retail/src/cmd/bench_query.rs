use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct BenchQueryArgs {}

pub async fn run(_args: BenchQueryArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("`retail bench` for this part is not built yet")
}
