use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct LakeArgs {}

pub async fn run(_args: LakeArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("`retail lake` is not built yet")
}
