#!/usr/bin/env bash
# A TLS front with authentication for the test Elasticsearch node: nginx terminates https with a
# certificate from a CA made here (openssl), and forwards only requests that carry one of the
# credentials made here (basic auth for a user, or `Authorization: ApiKey <key>`); anything else
# gets Elasticsearch's own 401 answer. The client settings (CA file, API key, username/password)
# are tested against it.
#
# Why not the node's own security: the integ-test distribution has no X-Pack, and the
# x-pack-security module cannot be assembled from Maven Central (it needs OpenSAML 4.3, which is
# published only in Shibboleth's repository: Central answers 404). See docs/elasticsearch.md.
#
#   tests/services/es-secure.sh start http://127.0.0.1:9250   # prints the directory of the files
#   tests/services/es-secure.sh stop
#
# The directory holds url, ca.pem, other-ca.pem (a CA that did not sign the certificate),
# username, password, api_key. Installs nginx from Debian when missing (apt-get; needs root).
set -euo pipefail

PORT="${CHILDINDEX_ES_SECURE_PORT:-9443}"
RUN_DIR="${TMPDIR:-/tmp}/childindex-es-secure-${PORT}"

log() { printf 'es-secure.sh: %s\n' "$*" >&2; }

NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

ensure_nginx() {
  if [[ -x "$NGINX" ]]; then return; fi
  log "installing nginx (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
  NGINX=/usr/sbin/nginx
}

make_ca() {  # make_ca NAME: a self-signed CA in NAME.pem / NAME.key
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=childindex test $1" \
    -keyout "$RUN_DIR/$1.key" -out "$RUN_DIR/$1.pem" 2>/dev/null
}

start() {
  local upstream="${1:?usage: $0 start UPSTREAM_URL}"
  stop >/dev/null 2>&1 || true
  ensure_nginx
  mkdir -p "$RUN_DIR"
  make_ca ca
  make_ca other-ca
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$RUN_DIR/san.ext"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$RUN_DIR/node.key" -out "$RUN_DIR/node.csr" 2>/dev/null
  openssl x509 -req -in "$RUN_DIR/node.csr" -CA "$RUN_DIR/ca.pem" -CAkey "$RUN_DIR/ca.key" \
    -CAcreateserial -days 2 -extfile "$RUN_DIR/san.ext" -out "$RUN_DIR/node.pem" 2>/dev/null
  local password api_key basic
  password="$(openssl rand -hex 16)"
  api_key="$(printf '%s:%s' "$(openssl rand -hex 10)" "$(openssl rand -hex 16)" | base64 -w0)"
  printf 'childindex_app' > "$RUN_DIR/username"
  printf '%s' "$password" > "$RUN_DIR/password"
  printf '%s' "$api_key" > "$RUN_DIR/api_key"
  basic="$(printf 'childindex_app:%s' "$password" | base64 -w0)"
  chmod 600 "$RUN_DIR"/*.key "$RUN_DIR/password" "$RUN_DIR/api_key"
  cat > "$RUN_DIR/nginx.conf" <<CONF
worker_processes 1;
pid ${RUN_DIR}/nginx.pid;
error_log ${RUN_DIR}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  map_hash_bucket_size 256;
  client_body_temp_path ${RUN_DIR}/body;
  proxy_temp_path ${RUN_DIR}/proxy;
  fastcgi_temp_path ${RUN_DIR}/fastcgi;
  uwsgi_temp_path ${RUN_DIR}/uwsgi;
  scgi_temp_path ${RUN_DIR}/scgi;
  map \$http_authorization \$allowed {
    default 0;
    "Basic ${basic}" 1;
    "ApiKey ${api_key}" 1;
  }
  upstream es { server ${upstream#http://}; keepalive 16; }
  server {
    listen 127.0.0.1:${PORT} ssl;
    ssl_certificate ${RUN_DIR}/node.pem;
    ssl_certificate_key ${RUN_DIR}/node.key;
    client_max_body_size 100m;
    location / {
      default_type application/json;
      if (\$allowed = 0) {
        add_header WWW-Authenticate 'Basic realm="security", ApiKey' always;
        return 401 '{"error":{"type":"security_exception","reason":"missing or wrong authentication credentials"},"status":401}';
      }
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
      proxy_pass http://es;
    }
  }
}
CONF
  printf 'https://127.0.0.1:%s' "$PORT" > "$RUN_DIR/url"
  "$NGINX" -c "$RUN_DIR/nginx.conf" -p "$RUN_DIR" -e "$RUN_DIR/error.log"
  local i
  for i in $(seq 1 50); do
    if curl -s -o /dev/null --cacert "$RUN_DIR/ca.pem" "https://127.0.0.1:${PORT}/"; then
      log "up: https://127.0.0.1:${PORT} -> ${upstream}"
      echo "$RUN_DIR"; return
    fi
    sleep 0.2
  done
  log "nginx did not answer"; cat "$RUN_DIR/error.log" >&2 || true; exit 1
}

stop() {
  if [[ -f "$RUN_DIR/nginx.pid" ]]; then
    "$NGINX" -c "$RUN_DIR/nginx.conf" -p "$RUN_DIR" -s quit 2>/dev/null || kill "$(cat "$RUN_DIR/nginx.pid")" || true
    sleep 0.5
  fi
  rm -rf "$RUN_DIR"
}

case "${1:-}" in
  start) start "${2:-}" ;;
  stop) stop ;;
  *) echo "usage: $0 start UPSTREAM_URL | stop" >&2; exit 64 ;;
esac
