#!/usr/bin/env bash
# An S3-compatible server for the lake tests (s3s-fs: S3 API over a local folder, path-style):
# install if missing, start, create the test bucket, wait until it answers, then print the
# `export` lines the tests read. A server this script started earlier is replaced by a fresh one
# (empty root); one started some other way and answering on the port is reused.
#   RETAIL_S3_PORT (default 8014), RETAIL_S3_DIR (default /tmp/retail-s3)
set -euo pipefail
port="${RETAIL_S3_PORT:-8014}"
dir="${RETAIL_S3_DIR:-/tmp/retail-s3}"
access_key="retail-test-key"
secret_key="retail-test-secret"
bucket="retail-test"
endpoint="http://127.0.0.1:${port}"
log() { echo "[s3] $*" >&2; }
export PATH="$HOME/.cargo/bin:$PATH"

# Any HTTP answer (even 403 for an unsigned request) means the server is up.
up() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${endpoint}/" 2>/dev/null)" != "000" ]; }

# A server this script started before (on this machine, an earlier run) is replaced: a
# long-lived s3s-fs was seen answering every listing with 500 InternalError ("No such file or
# directory") after earlier runs, and a test run should start from an empty root anyway.
pidfile="$dir/s3s-fs.pid"
if [ -f "$pidfile" ]; then
  old_pid=$(cat "$pidfile")
  if grep -q s3s-fs "/proc/$old_pid/cmdline" 2>/dev/null; then
    log "restarting the s3s-fs this script started earlier (pid $old_pid)"
    kill "$old_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      up || break
      sleep 0.1
    done
  fi
  rm -f "$pidfile"
fi

if ! up; then
  if ! command -v s3s-fs >/dev/null 2>&1; then
    log "installing s3s-fs (cargo install, a few minutes)"
    cargo install s3s-fs@0.14.1 --locked --features binary >&2
  fi
  # Test scratch only (every test writes under a prefix of its own): a new server starts on an
  # empty root, because objects left by earlier runs on this machine can break s3s-fs listings
  # (seen: 500 InternalError, "No such file or directory", after many runs on one data dir).
  rm -rf "$dir/data"
  # A bucket is a top-level folder of the root.
  mkdir -p "$dir/data/$bucket" "$dir/log"
  log "starting s3s-fs on ${endpoint} (data in $dir/data)"
  setsid s3s-fs --host 127.0.0.1 --port "$port" --access-key "$access_key" --secret-key "$secret_key" \
    "$dir/data" >"$dir/log/s3s-fs.log" 2>&1 < /dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 30); do
    up && break
    sleep 1
  done
  if ! up; then
    log "s3s-fs did not answer on ${endpoint} within 30s; see $dir/log/s3s-fs.log"
    tail -20 "$dir/log/s3s-fs.log" >&2 || true
    exit 1
  fi
fi
mkdir -p "$dir/data/$bucket"
log "ready at ${endpoint}, bucket ${bucket}"
echo "export RETAIL_TEST_S3_ENDPOINT=${endpoint}"
echo "export RETAIL_TEST_S3_ACCESS_KEY=${access_key}"
echo "export RETAIL_TEST_S3_SECRET_KEY=${secret_key}"
echo "export RETAIL_TEST_S3_BUCKET=${bucket}"
