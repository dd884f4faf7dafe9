use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct StreamArgs {}

pub async fn run(_args: StreamArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("`retail stream` is not built yet")
}
