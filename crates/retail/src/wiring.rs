//! Opening the backends the configuration names: one place, so every subcommand reaches the
//! same bus, lake and warehouse the same way, and failures read the same.

use crate::config::Config;
use anyhow::Context;
use std::sync::Arc;

pub fn bus_options(config: &Config) -> anyhow::Result<retail_bus::BusOptions> {
    Ok(retail_bus::BusOptions {
        auto_offset_reset: config.kafka.auto_offset_reset.parse()?,
        kafka: retail_bus::KafkaOptions { properties: config.kafka.properties.clone(), ..Default::default() },
        ..Default::default()
    })
}

/// The bus at `url` (the configured one, or a `--out` override), with the seed's topics created.
pub async fn open_bus(config: &Config, url: &str) -> anyhow::Result<Arc<dyn retail_bus::EventBus>> {
    let bus = retail_bus::open(url, &bus_options(config)?)
        .await
        .with_context(|| format!("cannot open the bus {url} (check RETAIL_BUS / `bus`, and that the broker is up)"))?;
    bus.ensure_topics().await.with_context(|| format!("cannot create the topics on {url}"))?;
    Ok(bus)
}

pub fn s3_options(config: &Config) -> retail_lake::S3Options {
    retail_lake::S3Options {
        endpoint: config.s3.endpoint.clone(),
        region: config.s3.region.clone(),
        access_key_id: config.s3.access_key_id.clone(),
        secret_access_key: config.s3.secret_access_key.clone(),
        virtual_hosted_style: config.s3.virtual_hosted_style,
        // A self-hosted endpoint named with http:// (MinIO on a private network) is allowed.
        allow_http: config.s3.endpoint.starts_with("http://"),
    }
}

/// The lake, checked reachable.
pub async fn open_lake(config: &Config) -> anyhow::Result<retail_lake::Lake> {
    // Without keys the AWS SDK chain falls back to the instance-metadata endpoint, which a
    // self-hosted endpoint (MinIO) never serves: say what is missing instead.
    if config.lake.starts_with("s3://") && !config.s3.endpoint.is_empty() && config.s3.access_key_id.is_empty() {
        anyhow::bail!(
            "lake {} at {} needs credentials: set RETAIL_S3_ACCESS_KEY_ID and RETAIL_S3_SECRET_ACCESS_KEY (or [s3] in the config)",
            config.lake,
            config.s3.endpoint
        );
    }
    let lake = retail_lake::Lake::open(&config.lake, &s3_options(config))
        .with_context(|| format!("cannot open the lake {} (check RETAIL_LAKE / `lake`)", config.lake))?;
    lake.check().await.with_context(|| format!("the lake {} is not reachable or not writable (check the endpoint, bucket and credentials)", config.lake))?;
    Ok(lake)
}

pub fn warehouse_options(config: &Config) -> retail_warehouse::WarehouseOptions {
    retail_warehouse::WarehouseOptions {
        user: config.clickhouse.user.clone(),
        password: config.clickhouse.password.clone(),
        database: config.clickhouse.database.clone(),
        // The embedded warehouse behind a live page and a busy stream: queries may read a
        // snapshot up to a second old rather than rebuild one for every insert.
        embedded_max_staleness: std::time::Duration::from_secs(1),
        ..Default::default()
    }
}

/// The warehouse the configuration names. The embedded one keeps its tables in `lake`.
/// Callers that write call `init()` (create or migrate the schema); readers need not.
pub async fn open_warehouse(config: &Config, lake: &retail_lake::Lake) -> anyhow::Result<Arc<dyn retail_warehouse::Warehouse>> {
    let embedded_lake = (config.warehouse == "embedded").then(|| lake.clone());
    retail_warehouse::open(&config.warehouse, &warehouse_options(config), embedded_lake)
        .await
        .with_context(|| format!("cannot open the warehouse {} (check RETAIL_WAREHOUSE / `warehouse`)", config.warehouse))
}

/// The warehouse, schema created or migrated: for the services that write to it.
pub async fn open_warehouse_for_writing(config: &Config, lake: &retail_lake::Lake) -> anyhow::Result<Arc<dyn retail_warehouse::Warehouse>> {
    let warehouse = open_warehouse(config, lake).await?;
    warehouse.init().await.with_context(|| format!("cannot initialise the warehouse {}", config.warehouse))?;
    Ok(warehouse)
}

/// The warehouse for reading and administration; the lake is opened only when the embedded
/// warehouse lives in it.
pub async fn open_warehouse_alone(config: &Config) -> anyhow::Result<Arc<dyn retail_warehouse::Warehouse>> {
    if config.warehouse == "embedded" {
        let lake = open_lake(config).await?;
        open_warehouse(config, &lake).await
    } else {
        retail_warehouse::open(&config.warehouse, &warehouse_options(config), None)
            .await
            .with_context(|| format!("cannot open the warehouse {} (check RETAIL_WAREHOUSE / `warehouse`)", config.warehouse))
    }
}
