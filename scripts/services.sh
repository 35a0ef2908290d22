# Sourced by scripts/up.sh and .ci/run: make sure MariaDB, Redis and RabbitMQ answer on their
# standard local ports, installing (Debian packages) and starting whatever is missing.
# Reuses services that are already running; never stops anything.

log() { printf '[herald] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
  local i
  for ((i = 0; i < $3 * 2; i++)); do port_open "$2" && return 0; sleep 0.5; done
  log "$1 did not come up on port $2 within $3 s"; return 1
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_mariadb() {
  port_open 3306 && return 0
  if [ ! -x /usr/sbin/mariadbd ]; then
    log "installing MariaDB"; apt_install mariadb-server mariadb-client
    fresh_install=1
  fi
  log "starting MariaDB"
  as_root mkdir -p /run/mysqld && as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_port MariaDB 3306 60
  if [ -n "${fresh_install:-}" ]; then
    # Herald's development setup connects as root over TCP with an empty password.
    as_root mariadb -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES;" || true
  fi
}

ensure_redis() {
  port_open 6379 && return 0
  command -v redis-server >/dev/null || { log "installing Redis"; apt_install redis-server; }
  log "starting Redis"
  redis-server --daemonize yes --port 6379 --save "" --appendonly no >/dev/null
  wait_port Redis 6379 20
}

ensure_rabbitmq() {
  port_open 5672 && return 0
  command -v rabbitmq-server >/dev/null || { log "installing RabbitMQ"; apt_install rabbitmq-server; }
  log "starting RabbitMQ"
  as_root rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_port RabbitMQ 5672 120
}

ensure_services() {
  ensure_mariadb
  ensure_redis
  ensure_rabbitmq
  log "MariaDB :3306, Redis :6379 and RabbitMQ :5672 are up"
}

# What the test suites need beyond the three services: the same servers' binaries for the private
# instances the fault and chaos tests start (and stop), kubectl to render the Kustomize overlays
# (no cluster) and Debian's chromium for the Swagger UI test (no browser download).
ensure_test_tools() {
  local bin
  for bin in mariadb-install-db redis-server rabbitmq-server; do
    command -v "$bin" >/dev/null || { log "installing the servers the fault and chaos tests run privately"; apt_install mariadb-server redis-server rabbitmq-server; break; }
  done
  command -v kubectl >/dev/null || { log "installing kubectl"; apt_install kubectl || apt_install kubernetes-client; }
  [ -x "${HERALD_TEST_CHROMIUM:-/usr/bin/chromium}" ] || { log "installing chromium"; apt_install chromium; }
}
