use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {}

pub async fn run(_args: ServeArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("`retail serve` is not built yet")
}
