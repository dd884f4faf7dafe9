use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct WarehouseArgs {}

pub async fn run(_args: WarehouseArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("`retail warehouse` is not built yet")
}
