use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {}

pub async fn run(_args: DemoArgs, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("`retail demo` is not built yet")
}
