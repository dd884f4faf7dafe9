use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {}

pub async fn run(_args: SimulateArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("`retail simulate` is not built yet")
}
