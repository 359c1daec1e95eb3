#!/usr/bin/env bash
# `make bench`: every benchmark the README reports, at the scale it reports (about two hours on
# 2 cores at 1,000,000 children). BENCH_CHILDREN=100000 make bench runs a quicker, smaller pass.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${BENCH_CHILDREN:-1000000}"
DB="var/bench-${N}.db"
mkdir -p var
# Every step uses the same key files (the audit chain's, the secrets'), made once under var/.
for purpose in audit secrets; do
  [ -f "var/bench-$purpose.key" ] || childindex keys generate "$purpose" "var/bench-$purpose.key" >/dev/null
done
export CHILDINDEX_AUDIT_KEY_FILE="$PWD/var/bench-audit.key" CHILDINDEX_SECRETS_KEY_FILE="$PWD/var/bench-secrets.key"
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "== seed rate ($N children, fresh SQLite file)"
rm -f "$DB" "$DB-wal" "$DB-shm"
python bench/seed_rate.py --children "$N" --db "$DB"
echo "== search index build ($N children)"
/usr/bin/time -v env CHILDINDEX_DATABASE_URL="sqlite:///$DB" childindex reindex 2>&1 \
  | grep -E "Indexed|Elapsed|Maximum resident"
echo "== involvement card read ($N children)"
python bench/card_read.py --db "$DB" --reads 2000 --http
echo "== FHIR Patient?identifier=...&_revinclude=... ($N children)"
python bench/fhir_revinclude.py --db "sqlite:///$DB" --requests 1000
echo "== FHIR Bulk Data export of every child ($N children; wall time, peak RSS of the job)"
python bench/fhir_bulk.py --children "$N" --db "$DB" --out var/bench-bulk
echo "== search through HTTP: app (auth + audit) beside a minimal FastAPI endpoint ($N children)"
# 15 s of warm-up per server: on this VM the host pages out file cache left idle for about a minute
# (DAMON), so a server that has just loaded its index starts with most of the database on disk.
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
python bench/search_http.py --database-url "sqlite:///$DB" --duration 20 --queries 1000 --warmup 15
echo "== the same with two uvicorn workers (one per core), app and ceiling alike"
python bench/search_http.py --database-url "sqlite:///$DB" --duration 20 --queries 1000 --workers 2 --skip dev --rate 500 --warmup 15
echo "== the audit wait alone: a group commit per worker against the node's shared writer (docs/audit.md)"
python bench/audit_writer.py --workers 2 --seconds 10 --rounds 2
command -v stress-ng >/dev/null || { apt-get update -qq && apt-get install -y -qq stress-ng; }
python bench/audit_writer.py --workers 2 --seconds 10 --rounds 2 --rate 500 --noise 1
echo "== through childindex serve on a quiet machine: search at 500/s and flat out, node's writer vs one per worker"
python bench/search_http.py --database-url "sqlite:///$DB" --duration 20 --queries 1000 --workers 2 \
  --skip ceiling dev --rate 500 --serve --old-writer --rounds 2 --warmup 15
echo "== noisy neighbour: search at 500/s and flat out beside stress-ng --cpu 1, node's writer vs one per worker"
python bench/search_http.py --database-url "sqlite:///$DB" --duration 20 --queries 1000 --workers 2 \
  --skip ceiling dev --rate 500 --noise 1 --serve --old-writer --rounds 2 --warmup 15
echo "== the same neighbour, the service weighted as deploy/systemd/childindex.service weights it (CPUWeight=1000; root)"
python bench/search_http.py --database-url "sqlite:///$DB" --duration 20 --queries 1000 --workers 2 \
  --skip ceiling dev --rate 500 --noise 1 --serve --server-weight 1000 --rounds 2 --warmup 15
echo "== Elasticsearch backend: index build, memory and search through HTTP ($N children)"
ES_PORT="${BENCH_ES_PORT:-9290}"
ES_URL="$(CHILDINDEX_ES_PORT=$ES_PORT CHILDINDEX_ES_EXTRA_JAVA_OPTS="-Xms2g -Xmx2g" \
  bash tests/services/elasticsearch.sh start | tail -n 1)"
trap 'CHILDINDEX_ES_PORT=$ES_PORT bash tests/services/elasticsearch.sh stop >/dev/null 2>&1 || true' EXIT
/usr/bin/time -v env CHILDINDEX_DATABASE_URL="sqlite:///$DB" CHILDINDEX_SEARCH_BACKEND=elasticsearch \
  CHILDINDEX_ELASTICSEARCH_URL="$ES_URL" childindex reindex 2>&1 | grep -E "Indexed|Elapsed|Maximum resident"
python bench/es_footprint.py --url "$ES_URL"
echo "== the indexer's Elasticsearch writes made visible at once: refresh false / true / wait_for ($N children; docs/nodes.md)"
python bench/index_refresh.py --elasticsearch-url "$ES_URL" --children "$N" --db var/bench-refresh.db
python bench/search_http.py --database-url "sqlite:///$DB" --backend elasticsearch \
  --elasticsearch-url "$ES_URL" --duration 20 --queries 1000 --skip dev
python bench/search_http.py --database-url "sqlite:///$DB" --backend elasticsearch \
  --elasticsearch-url "$ES_URL" --duration 20 --queries 1000 --workers 2 --skip dev
echo "== Elasticsearch beside embedded through HTTP, node sharing the cores and pinned to one ($N children; issue #21 item 2)"
python bench/search_es.py --children "$N" --database-url "sqlite:///$DB" --elasticsearch-url "$ES_URL" \
  --rate 200 --duration 30 --slices 10 --warmup 15 --placements shared pinned --es-cpus 1 --app-cpus 0
python bench/search_es.py --children "$N" --database-url "sqlite:///$DB" --elasticsearch-url "$ES_URL" \
  --rate 50 --duration 30 --slices 10 --warmup 15 --placements pinned shared --es-cpus 1 --app-cpus 0
echo "== the node's round trip alone, at the same queries, node and client each on a core"
python bench/es_round_trip.py --elasticsearch-url "$ES_URL" --database-url "sqlite:///$DB" --rates 100 200 400
echo "== Elasticsearch beyond a million: ${BENCH_ES_SCALE_CHILDREN:-3000000} synthetic children straight into the node"
python bench/es_scale.py --url "$ES_URL" --children "${BENCH_ES_SCALE_CHILDREN:-3000000}" --rate 100 --searches 3000
echo "== match quality (labelled set of 50,000 people)"
python bench/search_quality.py --people 50000 --cases 2000
echo "== duplicates report ($N synthetic children, 2,000 planted duplicates, resident index)"
python bench/duplicates_report.py --people "$N" --planted 2000
echo "== import rate ($N CSV rows)"
python bench/import_rate.py --rows "$N" --format csv
echo "== feeds that reconcile: a re-import of $N unchanged rows (childindex import --source pds)"
python bench/feed_reconcile.py unchanged --rows "$N" --dir var/bench-feed
echo "== feeds that reconcile: a 100,000-row feed of changes against 100,000 indexed children (labelled)"
python bench/feed_reconcile.py changes --children 100000 --rows 100000 --dir var/bench-feed
echo "== changing a child's details (2,000 changes, SQLite)"
python bench/details_change.py --database-url "sqlite:///var/bench-details.db" --children 2000 --changes 2000
echo "== operations: the request timer, a /metrics scrape with $N outbox rows, a /readyz probe storm"
python bench/ops_overhead.py --children "$N" --database-url "sqlite:///var/bench-ops.db"
echo "== merge, unmerge and subject access (300 pairs, SQLite)"
python bench/merge.py --database-url "sqlite:///var/bench-merge.db" --pairs 300
echo "== PostgreSQL beside SQLite: seed, reindex, size, card reads, search through HTTP ($N children; its own durable cluster)"
python bench/databases.py --children "$N"
