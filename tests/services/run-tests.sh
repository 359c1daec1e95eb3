#!/usr/bin/env bash
# Start the real services the suite needs, run pytest, stop them whatever happens.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."

cleanup() {
  bash "$here/es-secure.sh" stop >/dev/null 2>&1 || true
  bash "$here/elasticsearch.sh" stop >/dev/null 2>&1 || true
  bash "$here/postgres.sh" stop || true
}
trap cleanup EXIT

echo "Starting PostgreSQL for the PostgreSQL tests..."
CHILDINDEX_TEST_POSTGRES_URL="$(bash "$here/postgres.sh" start | tail -n 1)"
export CHILDINDEX_TEST_POSTGRES_URL
echo "Starting Elasticsearch (integ-test distribution from Maven Central) for the backend tests..."
CHILDINDEX_TEST_ELASTICSEARCH_URL="$(bash "$here/elasticsearch.sh" start | tail -n 1)"
export CHILDINDEX_TEST_ELASTICSEARCH_URL
CHILDINDEX_TEST_ES_SECURE_DIR="$(bash "$here/es-secure.sh" start "$CHILDINDEX_TEST_ELASTICSEARCH_URL" | tail -n 1)"; export CHILDINDEX_TEST_ES_SECURE_DIR

bash "$here/chromium.sh"
bash "$here/haproxy.sh"  # the reverse proxy in front of the two-node test (tests/ops/test_two_nodes.py)

set +e
python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
fi
exit "$status"
