use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct QueryArgs {}

pub async fn run(_args: QueryArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("`retail query` is not built yet")
}
