#!/usr/bin/env bash
# ClickHouse for the warehouse tests: install if missing, start (own config and data dir, not the
# system service), wait until it answers, then print the `export` line the tests read.
# Idempotent: when a server already answers on the port, it is reused.
#   RETAIL_CH_HTTP_PORT (default 8123), RETAIL_CH_DIR (default /tmp/retail-clickhouse)
set -euo pipefail
port="${RETAIL_CH_HTTP_PORT:-8123}"
dir="${RETAIL_CH_DIR:-/tmp/retail-clickhouse}"
url="http://127.0.0.1:${port}"
log() { echo "[clickhouse] $*" >&2; }

ping() { curl -fsS --max-time 2 "${url}/ping" 2>/dev/null | grep -q Ok; }

if ! ping; then
  if ! command -v clickhouse-server >/dev/null 2>&1; then
    log "installing clickhouse-server (apt)"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >&2
  fi
  mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log}
  # A minimal config: HTTP on $port, native protocol on a port unlikely to clash, UTC, quiet logs.
  cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/log/server.log</log>
        <errorlog>$dir/log/server.err.log</errorlog>
        <size>50M</size>
        <count>2</count>
    </logger>
    <http_port>$port</http_port>
    <tcp_port>$((port + 10877))</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
XML
  cp /etc/clickhouse-server/users.xml "$dir/users.xml"
  owner=root
  if id clickhouse >/dev/null 2>&1; then owner=clickhouse; fi
  chown -R "$owner" "$dir"
  log "starting clickhouse-server (data in $dir, log $dir/log/server.err.log)"
  if [ "$owner" = clickhouse ] && [ "$(id -u)" = 0 ]; then
    setsid runuser -u clickhouse -- clickhouse-server --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 < /dev/null &
  else
    setsid clickhouse-server --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 < /dev/null &
  fi
  for _ in $(seq 1 60); do
    ping && break
    sleep 1
  done
  if ! ping; then
    log "clickhouse-server did not answer on ${url} within 60s; see $dir/log/"
    tail -20 "$dir/log/server.err.log" "$dir/log/stdout.log" >&2 || true
    exit 1
  fi
fi
log "ready at ${url}"
echo "export RETAIL_TEST_CLICKHOUSE=${url}"
