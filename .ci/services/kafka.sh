#!/usr/bin/env bash
# Kafka-protocol broker for the bus integration tests: tansu (a Kafka-compatible broker in Rust)
# with in-memory storage. Installs tansu if missing, starts it in the background unless something
# already answers on the port, waits until it does, and prints (on stdout, the only thing printed
# there) the variable the tests read:
#     export RETAIL_TEST_KAFKA=127.0.0.1:9092
# Idempotent: running it again with the broker up just prints the variable.
# Env: KAFKA_PORT (default 9092), KAFKA_LOG (default /tmp/retail-tansu.log).
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
port="${KAFKA_PORT:-9092}"
logfile="${KAFKA_LOG:-/tmp/retail-tansu.log}"
log() { echo "[kafka.sh] $*" >&2; }

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if answers; then
  log "a broker already answers on 127.0.0.1:$port"
else
  if ! command -v tansu >/dev/null 2>&1; then
    log "installing tansu (cargo install tansu --locked --features dynostore; takes 15–20 min)"
    cargo install tansu --locked --features dynostore >&2
  fi
  log "starting tansu on 127.0.0.1:$port (memory storage), log: $logfile"
  # setsid + nohup: the broker outlives this script (CI runs tests after it returns).
  setsid nohup tansu broker \
    --storage-engine memory://tansu/ \
    --listener-url "tcp://0.0.0.0:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    >"$logfile" 2>&1 </dev/null &
  echo $! >"${logfile%.log}.pid"
  for _ in $(seq 1 100); do
    answers && break
    sleep 0.2
  done
  if ! answers; then
    log "tansu did not answer on 127.0.0.1:$port within 20 s; last log lines:"
    tail -n 20 "$logfile" >&2 || true
    exit 1
  fi
  log "tansu is up (pid $(cat "${logfile%.log}.pid"))"
fi
echo "export RETAIL_TEST_KAFKA=127.0.0.1:$port"
