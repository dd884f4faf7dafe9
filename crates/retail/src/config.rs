//! One typed configuration: defaults ← TOML file ← `RETAIL_*` environment ← command-line flags.
//! Validated at start; secrets are never printed (see `redacted_toml`).

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Home of the embedded bus, lake and warehouse.
    pub data_dir: PathBuf,
    /// `file://DIR` (embedded durable log) or `kafka://host:port[,host:port]`. Empty = `file://<data_dir>/bus`.
    pub bus: String,
    /// `file://DIR` or `s3://bucket[/prefix]`. Empty = `file://<data_dir>/lake`.
    pub lake: String,
    /// `embedded` (DataFusion over the lake) or `clickhouse://host:8123` / `http(s)://host:8123`.
    pub warehouse: String,
    pub kafka: KafkaConfig,
    pub s3: S3Config,
    pub clickhouse: ClickHouseConfig,
    pub server: ServerConfig,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub group_id: String,
    /// Where a consumer group without a committed offset starts: `earliest` or `latest`.
    pub auto_offset_reset: String,
    /// Passed verbatim to librdkafka (TLS/SASL: `security.protocol`, `sasl.mechanisms`, …).
    pub properties: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// e.g. `http://127.0.0.1:9000` for MinIO; empty = AWS.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Virtual-hosted–style addressing (AWS); MinIO and most self-hosted servers need path style (false).
    pub virtual_hosted_style: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    pub user: String,
    pub password: String,
    pub database: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./retail-data"),
            bus: String::new(),
            lake: String::new(),
            warehouse: "embedded".into(),
            kafka: KafkaConfig::default(),
            s3: S3Config { region: "us-east-1".into(), ..Default::default() },
            clickhouse: ClickHouseConfig::default(),
            server: ServerConfig::default(),
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig { group_id: "retail-stream".into(), auto_offset_reset: "earliest".into(), properties: BTreeMap::new() }
    }
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig { user: "default".into(), password: String::new(), database: "retail".into() }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { listen: "127.0.0.1:8080".into() }
    }
}

/// The environment variables read, and the field each sets.
const ENV_OVERRIDES: &[&str] = &[
    "RETAIL_DATA_DIR",
    "RETAIL_BUS",
    "RETAIL_LAKE",
    "RETAIL_WAREHOUSE",
    "RETAIL_KAFKA_GROUP_ID",
    "RETAIL_KAFKA_AUTO_OFFSET_RESET",
    "RETAIL_S3_ENDPOINT",
    "RETAIL_S3_REGION",
    "RETAIL_S3_ACCESS_KEY_ID",
    "RETAIL_S3_SECRET_ACCESS_KEY",
    "RETAIL_CLICKHOUSE_USER",
    "RETAIL_CLICKHOUSE_PASSWORD",
    "RETAIL_CLICKHOUSE_DATABASE",
    "RETAIL_HTTP_LISTEN",
];

impl Config {
    /// Defaults, then the file, then the environment, then `--data-dir`; then validate.
    pub fn load(file: Option<&Path>, data_dir_flag: Option<&Path>) -> anyhow::Result<Config> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => Config::default(),
        };
        let env: BTreeMap<String, String> = ENV_OVERRIDES.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect();
        config.apply_env(&env);
        if let Some(dir) = data_dir_flag {
            config.data_dir = dir.to_path_buf();
        }
        config.fill_defaults();
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, env: &BTreeMap<String, String>) {
        for (key, value) in env {
            let v = value.clone();
            match key.as_str() {
                "RETAIL_DATA_DIR" => self.data_dir = PathBuf::from(v),
                "RETAIL_BUS" => self.bus = v,
                "RETAIL_LAKE" => self.lake = v,
                "RETAIL_WAREHOUSE" => self.warehouse = v,
                "RETAIL_KAFKA_GROUP_ID" => self.kafka.group_id = v,
                "RETAIL_KAFKA_AUTO_OFFSET_RESET" => self.kafka.auto_offset_reset = v,
                "RETAIL_S3_ENDPOINT" => self.s3.endpoint = v,
                "RETAIL_S3_REGION" => self.s3.region = v,
                "RETAIL_S3_ACCESS_KEY_ID" => self.s3.access_key_id = v,
                "RETAIL_S3_SECRET_ACCESS_KEY" => self.s3.secret_access_key = v,
                "RETAIL_CLICKHOUSE_USER" => self.clickhouse.user = v,
                "RETAIL_CLICKHOUSE_PASSWORD" => self.clickhouse.password = v,
                "RETAIL_CLICKHOUSE_DATABASE" => self.clickhouse.database = v,
                "RETAIL_HTTP_LISTEN" => self.server.listen = v,
                _ => {}
            }
        }
    }

    /// Embedded defaults live under the data dir unless a URL says otherwise.
    fn fill_defaults(&mut self) {
        if self.bus.is_empty() {
            self.bus = format!("file://{}", self.data_dir.join("bus").display());
        }
        if self.lake.is_empty() {
            self.lake = format!("file://{}", self.data_dir.join("lake").display());
        }
        if self.warehouse.is_empty() {
            self.warehouse = "embedded".into();
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let scheme = |url: &str| url.split_once("://").map(|(s, _)| s.to_string());
        match scheme(&self.bus).as_deref() {
            Some("file") | Some("kafka") => {}
            _ => bail!("bus `{}`: expected file://DIR or kafka://host:port[,host:port] (set RETAIL_BUS or `bus` in the config)", self.bus),
        }
        match scheme(&self.lake).as_deref() {
            Some("file") | Some("s3") => {}
            _ => bail!("lake `{}`: expected file://DIR or s3://bucket[/prefix] (set RETAIL_LAKE or `lake` in the config)", self.lake),
        }
        match (self.warehouse.as_str(), scheme(&self.warehouse).as_deref()) {
            ("embedded", _) | (_, Some("clickhouse")) | (_, Some("http")) | (_, Some("https")) => {}
            _ => bail!(
                "warehouse `{}`: expected `embedded` or clickhouse://host:8123 / http(s)://host:8123 (set RETAIL_WAREHOUSE or `warehouse` in the config)",
                self.warehouse
            ),
        }
        match self.kafka.auto_offset_reset.as_str() {
            "earliest" | "latest" => {}
            other => bail!("kafka.auto_offset_reset `{other}`: expected `earliest` or `latest`"),
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            bail!("server.listen `{}`: expected host:port such as 127.0.0.1:8080", self.server.listen);
        }
        Ok(())
    }

    /// The effective configuration as TOML with every secret replaced.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        let redact = |s: &mut String| {
            if !s.is_empty() {
                *s = "<redacted>".into()
            }
        };
        redact(&mut shown.s3.secret_access_key);
        redact(&mut shown.clickhouse.password);
        for (k, v) in shown.kafka.properties.iter_mut() {
            if k.contains("password") || k.contains("secret") || k.contains("key") {
                redact(v);
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render config: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_defaults_follow_data_dir() {
        let mut c: Config = toml::from_str("data_dir = \"/tmp/x\"\nwarehouse = \"embedded\"").unwrap();
        let env = BTreeMap::from([("RETAIL_LAKE".to_string(), "s3://bucket/lake".to_string())]);
        c.apply_env(&env);
        c.fill_defaults();
        c.validate().unwrap();
        assert_eq!(c.lake, "s3://bucket/lake");
        assert_eq!(c.bus, "file:///tmp/x/bus");
    }

    #[test]
    fn unknown_fields_and_bad_urls_are_rejected() {
        assert!(toml::from_str::<Config>("buss = \"kafka://x:9092\"").is_err());
        let c = Config { bus: "amqp://x".into(), ..Config::default() };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("amqp://x") && err.contains("RETAIL_BUS"), "{err}");
    }

    #[test]
    fn secrets_are_redacted() {
        let mut c = Config::default();
        c.s3.secret_access_key = "hunter2".into();
        c.clickhouse.password = "pw".into();
        c.kafka.properties.insert("sasl.password".into(), "kpw".into());
        let shown = c.redacted_toml();
        assert!(!shown.contains("hunter2") && !shown.contains("\"pw\"") && !shown.contains("kpw"), "{shown}");
    }
}
