#!/usr/bin/env bash
# `npm run up`: one command from a fresh clone to a running Herald on http://localhost:3000.
# Installs dependencies, starts (or reuses) MariaDB, Redis and RabbitMQ, builds, then starts
# the service in the foreground; it migrates the database at start-up. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

ensure_services
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi
log "building"
NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false npx nx run server:build --outputStyle=stream >/dev/null

# DEVELOPMENT KEYS ONLY — published in this repository, never use them outside your machine.
DEV_ADMIN_TOKEN=herald-dev-admin-token-NOT-FOR-PRODUCTION
DEV_PRODUCER_TOKEN=herald-dev-producer-token-NOT-FOR-PRODUCTION
export HERALD_API_KEYS="${HERALD_API_KEYS:-dev-admin:admin:$DEV_ADMIN_TOKEN,dev-producer:producer:$DEV_PRODUCER_TOKEN}"
export HERALD_ALLOW_PRIVATE_URLS="${HERALD_ALLOW_PRIVATE_URLS:-true}"
# DEVELOPMENT check-back signing secret — published here, never use it outside your machine.
export HERALD_CHECK_SECRET="${HERALD_CHECK_SECRET:-whsec_ZGV2ZWxvcG1lbnQtb25seS1jaGVjay1zZWNyZXQtaGVyYWxk}"
export PORT="${PORT:-3000}"

cat >&2 <<INFO

  Herald is starting on http://localhost:$PORT
  Swagger UI:       http://localhost:$PORT/docs
  Development keys (Authorize in Swagger UI, or Authorization: Bearer <token>):
    admin     $DEV_ADMIN_TOKEN
    producer  $DEV_PRODUCER_TOKEN

INFO
exec npm start --silent
