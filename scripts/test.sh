#!/usr/bin/env bash
# `npm test`: starts (or reuses) MariaDB, Redis and RabbitMQ, installs what the suites need
# (scripts/services.sh: ensure_test_tools), then runs lint, typecheck, tests, fault tests and build
# of every project. Every task runs even after a failure; any failure makes the exit code non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

ensure_services
ensure_test_tools
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi

export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false
exec npx nx run-many -t lint typecheck test test-faults build --parallel=1 --outputStyle=stream --nxBail=false "$@"
