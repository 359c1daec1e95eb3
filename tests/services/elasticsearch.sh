#!/usr/bin/env bash
# Start, stop or inspect a throwaway single-node Elasticsearch for the search backend tests.
#
#   tests/services/elasticsearch.sh start    # download (cached), verify, unpack, start, wait
#   tests/services/elasticsearch.sh status   # print the URL and cluster health, exit 1 if down
#   tests/services/elasticsearch.sh stop     # stop the node and delete its data
#
# Then: export CHILDINDEX_TEST_ELASTICSEARCH_URL=http://127.0.0.1:9250
# CHILDINDEX_ES_PORT (9250), CHILDINDEX_ES_EXTRA_JAVA_OPTS (after -Xms512m -Xmx512m) and
# CHILDINDEX_ES_PROCESSORS (node.processors; default all the machine's cores) tune the node.
#
# Uses the integ-test-zip distribution from Maven Central: it has no bundled JDK and no
# X-Pack, so security is off and the machine's Java 17 runs it. Elasticsearch refuses to
# run as root, so when started as root it runs as the system user `childindex-es`.
set -euo pipefail

ES_VERSION="${CHILDINDEX_ES_VERSION:-8.19.4}"
ES_PORT="${CHILDINDEX_ES_PORT:-9250}"
ES_HOST=127.0.0.1
ES_URL="http://${ES_HOST}:${ES_PORT}"
ES_USER="${CHILDINDEX_ES_USER:-childindex-es}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/childindex"
MAVEN="https://repo1.maven.org/maven2/org/elasticsearch/distribution/integ-test-zip/elasticsearch"
ZIP_NAME="elasticsearch-${ES_VERSION}.zip"
ZIP_URL="${MAVEN}/${ES_VERSION}/${ZIP_NAME}"
# The unpacked node lives next to the zip, except as root: $HOME (/root) is not readable by
# the unprivileged user the node runs as, so it goes to the system cache instead.
if [[ "$(id -u)" == 0 ]]; then
  HOME_DIR="${CHILDINDEX_ES_HOME_DIR:-/var/cache/childindex/elasticsearch-${ES_VERSION}}"
else
  HOME_DIR="${CHILDINDEX_ES_HOME_DIR:-${CACHE_DIR}/elasticsearch-${ES_VERSION}}"
fi
# Per-port run directory holds the pid, data, logs and a private config copy.
RUN_DIR="${TMPDIR:-/tmp}/childindex-es-${ES_PORT}"
PID_FILE="${RUN_DIR}/es.pid"
START_TIMEOUT="${CHILDINDEX_ES_START_TIMEOUT:-120}"

log() { printf 'elasticsearch.sh: %s\n' "$*" >&2; }

find_java_home() {
  if [[ -n "${ES_JAVA_HOME:-}" ]]; then echo "$ES_JAVA_HOME"; return; fi
  local candidate
  for candidate in "${JAVA_HOME:-}" /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-arm64 \
                   /usr/lib/jvm/java-17-openjdk /usr/lib/jvm/temurin-17-jdk-amd64; do
    if [[ -n "$candidate" && -x "$candidate/bin/java" ]]; then echo "$candidate"; return; fi
  done
  log "no Java 17 found: set ES_JAVA_HOME"; exit 2
}

is_running() {
  [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

health() {
  curl -sf "${ES_URL}/_cluster/health" 2>/dev/null || true
}

download() {
  mkdir -p "$CACHE_DIR"
  if [[ -x "${HOME_DIR}/bin/elasticsearch" ]]; then return; fi
  local zip="${CACHE_DIR}/${ZIP_NAME}"
  if [[ ! -f "$zip" ]]; then
    log "downloading ${ZIP_URL}"
    curl -sSfL --retry 3 -o "${zip}.part" "$ZIP_URL"
    mv "${zip}.part" "$zip"
  fi
  local want got
  want="$(curl -sSfL --retry 3 "${ZIP_URL}.sha1" | awk '{print $1}')"
  got="$(sha1sum "$zip" | awk '{print $1}')"
  if [[ "$want" != "$got" ]]; then
    rm -f "$zip"
    log "checksum mismatch for ${ZIP_NAME} (want ${want}, got ${got}); deleted, re-run"; exit 3
  fi
  log "sha1 verified (${got}); unpacking"
  mkdir -p "$(dirname "$HOME_DIR")"
  local tmp; tmp="$(dirname "$HOME_DIR")/unpack.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  if command -v unzip >/dev/null; then
    unzip -q "$zip" -d "$tmp"
  else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$zip" "$tmp"
  fi
  chmod +x "$tmp"/elasticsearch-"${ES_VERSION}"/bin/*
  rm -rf "$HOME_DIR"
  mv "$tmp/elasticsearch-${ES_VERSION}" "$HOME_DIR"
  rmdir "$tmp"
}

ensure_user() {
  if [[ "$(id -u)" != 0 ]]; then return; fi
  if ! id "$ES_USER" >/dev/null 2>&1; then
    log "creating system user ${ES_USER}"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$ES_USER"
  fi
}

start() {
  if is_running; then
    log "already running (pid $(cat "$PID_FILE"))"; echo "$ES_URL"; return
  fi
  download
  ensure_user
  local java_home; java_home="$(find_java_home)"
  rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR/data" "$RUN_DIR/logs" "$RUN_DIR/config"
  cp -r "${HOME_DIR}/config/." "$RUN_DIR/config/"
  cat > "$RUN_DIR/config/elasticsearch.yml" <<YML
cluster.name: childindex-test
node.name: childindex-test-${ES_PORT}
discovery.type: single-node
network.host: ${ES_HOST}
http.port: ${ES_PORT}
transport.port: $((ES_PORT + 50))
path.data: ${RUN_DIR}/data
path.logs: ${RUN_DIR}/logs
action.destructive_requires_name: false
cluster.routing.allocation.disk.threshold_enabled: false
xpack.security.enabled: false
YML
  if [[ -n "${CHILDINDEX_ES_PROCESSORS:-}" ]]; then
    # The cores the node sizes its thread pools for (default: all it sees), for a node that will be
    # pinned to fewer (bench/search_es.py, bench/es_round_trip.py).
    echo "node.processors: ${CHILDINDEX_ES_PROCESSORS}" >> "$RUN_DIR/config/elasticsearch.yml"
  fi
  local -a run=(env "ES_JAVA_HOME=${java_home}" "ES_PATH_CONF=${RUN_DIR}/config"
                "ES_JAVA_OPTS=-Xms512m -Xmx512m ${CHILDINDEX_ES_EXTRA_JAVA_OPTS:-}"
                "${HOME_DIR}/bin/elasticsearch" -d -p "$PID_FILE")
  if [[ "$(id -u)" == 0 ]]; then
    chown -R "$ES_USER" "$RUN_DIR"
    # The node writes nothing under its home, but needs to read it.
    chmod -R a+rX "$HOME_DIR"
    run=(runuser -u "$ES_USER" -- "${run[@]}")
  fi
  if ! "${run[@]}" >"$RUN_DIR/stdout.log" 2>&1; then
    log "failed to start; output:"
    tail -n 40 "$RUN_DIR/stdout.log" >&2
    rm -rf "$RUN_DIR"
    exit 1
  fi
  log "waiting up to ${START_TIMEOUT}s for ${ES_URL}"
  local deadline=$((SECONDS + START_TIMEOUT)) h=""
  while (( SECONDS < deadline )); do
    h="$(health)"
    if [[ "$h" == *'"status":"green"'* || "$h" == *'"status":"yellow"'* ]]; then
      log "up (pid $(cat "$PID_FILE")): ${h}"
      echo "$ES_URL"; return
    fi
    if [[ -f "$PID_FILE" ]] && ! is_running; then break; fi
    sleep 1
  done
  log "did not become healthy; last log lines:"
  tail -n 40 "$RUN_DIR/logs/childindex-test.log" "$RUN_DIR/stdout.log" >&2 || true
  stop || true
  exit 1
}

stop() {
  if is_running; then
    local pid; pid="$(cat "$PID_FILE")"
    log "stopping pid ${pid}"
    kill "$pid"
    local i
    for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
  else
    log "not running"
  fi
  rm -rf "$RUN_DIR"
}

status() {
  if is_running; then
    echo "$ES_URL"; health; echo
  else
    log "not running"; return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 64 ;;
esac
