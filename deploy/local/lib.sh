# shellcheck shell=bash
# Shared by deploy/local/{up,down,status,test}: where the local stack lives and how its parts are
# started, checked and stopped. Sourced, never run.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${ADCLICK_STACK_DIR:-$REPO/.local}
PIDS=$STATE/pids
LOGS=$STATE/logs
ENV_FILE=$STATE/stack.env

# Ports, all on 127.0.0.1. Override when a port is taken on your machine.
REDIS_PORT=${ADCLICK_REDIS_PORT:-6379}
KAFKA_PORT=${ADCLICK_KAFKA_PORT:-9092}
PROMETHEUS_PORT=${ADCLICK_PROMETHEUS_PORT:-9090}
S3_PORT=${ADCLICK_S3_PORT:-3900}
GARAGE_RPC_PORT=${ADCLICK_GARAGE_RPC_PORT:-3901}
GARAGE_ADMIN_PORT=${ADCLICK_GARAGE_ADMIN_PORT:-3903}
# PostgreSQL: the machine's server (Debian's cluster, which `up` starts when nothing answers).
POSTGRES_PORT=${ADCLICK_POSTGRES_PORT:-5432}

CLICKS_TOPIC=clicks
CLICKS_PARTITIONS=${ADCLICK_CLICKS_PARTITIONS:-8}
S3_BUCKET=adclick
S3_REGION=garage
# A fixed key for a stack bound to 127.0.0.1 only: `garage key import` accepts it, and every
# client reads it from stack.env. Never used outside the local stack.
S3_KEY_ID=GK0adc11c00000000000000001
S3_KEY_SECRET=0adc11c000000000000000000000000000000000000000000000000000000001

# The billing store's database, and how the stack reaches PostgreSQL: user postgres over TCP
# without a password (trust on 127.0.0.1, as on this machine kind; `install` sets it up on a
# Debian cluster it installs).
BILLING_DATABASE=adclick
POSTGRES_ADMIN_URL=postgres://postgres@127.0.0.1:$POSTGRES_PORT/postgres
BILLING_DATABASE_URL=postgres://postgres@127.0.0.1:$POSTGRES_PORT/$BILLING_DATABASE

TANSU_VERSION=0.6.0
GARAGE_VERSION=2.5.0
NEXTEST_VERSION=0.9.143

# cargo-installed servers land here (the same place `cargo install` uses by default).
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
export PATH=$CARGO_BIN:$PATH

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive NAME: the process `up` started as NAME is still running.
pid_alive() {
  local f=$PIDS/$1.pid
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# wait_until NAME LOG SECONDS CMD...: polls CMD until it succeeds; on timeout fails naming the
# component and its log file.
wait_until() {
  local name=$1 log=$2 secs=$3
  shift 3
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      say "error: $name did not become ready within ${secs}s. Its log: $log"
      [[ -f $log ]] && tail -n 20 "$log" | sed 's/^/  | /' >&2
      exit 1
    fi
    if [[ -f $PIDS/$name.pid ]] && ! pid_alive "$name"; then
      say "error: $name exited while starting. Its log: $log"
      [[ -f $log ]] && tail -n 20 "$log" | sed 's/^/  | /' >&2
      exit 1
    fi
    sleep 0.3
  done
}

# start_daemon NAME DIR CMD...: starts CMD in DIR in the background, logging to $LOGS/NAME.log,
# and remembers its pid so that `down` stops only what `up` started.
start_daemon() {
  local name=$1 dir=$2
  shift 2
  mkdir -p "$dir" "$PIDS" "$LOGS"
  (cd "$dir" && exec setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null) &
  echo $! >"$PIDS/$name.pid"
}

# stop_daemon NAME: stops a process `up` started (TERM, then KILL after 15 s).
stop_daemon() {
  local name=$1 f=$PIDS/$1.pid pid
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.3; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    say "stopped $name (pid $pid)"
  fi
  rm -f "$f"
}

# need_debian_packages CMD=PACKAGE...: installs the Debian packages whose command is missing (a
# CMD that is an absolute path is a file the package installs, e.g. a header; it may be a glob,
# e.g. /usr/lib/postgresql/*/bin/initdb for any version).
need_debian_packages() {
  local missing=() pair
  for pair in "$@"; do
    if [[ ${pair%%=*} == /* ]]; then
      compgen -G "${pair%%=*}" >/dev/null && continue
    else
      command -v "${pair%%=*}" >/dev/null 2>&1 && continue
    fi
    # One package may bring several commands (prometheus and promtool): name it once.
    [[ " ${missing[*]} " == *" ${pair#*=} "* ]] || missing+=("${pair#*=}")
  done
  ((${#missing[@]} == 0)) && return 0
  say "installing Debian packages: ${missing[*]}"
  [[ $(id -u) == 0 ]] || die "need root to apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$LOGS/apt.log" 2>&1 ||
    die "apt-get update failed, see $LOGS/apt.log"
  # --no-install-recommends: the prometheus package recommends node-exporter, a daemon we don't want.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >>"$LOGS/apt.log" 2>&1 || die "apt-get install ${missing[*]} failed, see $LOGS/apt.log"
  # Debian's prometheus package may start its own service on :9090 where an init system runs.
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    (systemctl disable --now prometheus || service prometheus stop) >/dev/null 2>&1 || true
  fi
}

# postgres_version: the newest PostgreSQL server version Debian installed (the NN of
# /usr/lib/postgresql/NN/bin/initdb), empty when none is.
postgres_version() {
  local initdb
  for initdb in /usr/lib/postgresql/*/bin/initdb; do
    [[ -e $initdb ]] && basename "$(dirname "$(dirname "$initdb")")"
  done | sort -n | tail -n 1
}

# postgres_ready: PostgreSQL answers on POSTGRES_PORT and lets the stack's user in.
postgres_ready() {
  [[ $(PGCONNECT_TIMEOUT=3 psql "$POSTGRES_ADMIN_URL" -X -At -c 'SELECT 1' 2>/dev/null) == 1 ]]
}

# postgres_sql SQL: runs SQL on the maintenance database, stopping at the first error.
postgres_sql() { psql "$POSTGRES_ADMIN_URL" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

# How the local stack's servers are built: cargo's own release profile (no LTO, 16 codegen
# units, no debug info: neither tansu nor garage publishes a profile of its own, so these only
# guard against one that a later version might bring) at SERVER_OPT_LEVEL, 0 by default, but for
# the C that `install` always builds at 3 (tansu's SQLite and LZ4: most of the broker's CPU in a
# test run, perf in BENCHMARKS.md "first run"). Their build is most of a first run's time; the
# tests run as reliably against such servers as against opt-level 3 since `up` indexes tansu's
# header table. The benchmarks refuse servers built below 3: ADCLICK_SERVER_OPT_LEVEL=3.
SERVER_OPT_LEVEL=${ADCLICK_SERVER_OPT_LEVEL:-0}
case $SERVER_OPT_LEVEL in 0 | 1 | 2 | 3) ;; *) die "ADCLICK_SERVER_OPT_LEVEL=$SERVER_OPT_LEVEL: 0, 1, 2 or 3" ;; esac

# server_opt_level CMD: the opt-level the installed CMD was built with (need_cargo_binary notes it
# beside the binary); 3, cargo's release default, for one installed otherwise.
server_opt_level() {
  local note=$CARGO_BIN/.adclick-opt-level-$1
  if [[ -f $note ]]; then cat "$note"; else echo 3; fi
}

# need_cargo_binary CMD VERSION CARGO-INSTALL-ARGS...: installs a server from crates.io once: a
# CMD on the PATH that reports VERSION is kept as it is, unless it was built at a lower opt-level
# than SERVER_OPT_LEVEL asks for. INSTALL_NICE: the build's niceness (default 0).
need_cargo_binary() {
  local cmd=$1 version=$2
  shift 2
  if command -v "$cmd" >/dev/null 2>&1 && "$cmd" --version 2>/dev/null | grep -q "$version" &&
    (($(server_opt_level "$cmd") >= SERVER_OPT_LEVEL)); then
    return 0
  fi
  say "installing $cmd $version (opt-level $SERVER_OPT_LEVEL) from crates.io (first run only; several minutes, log: $LOGS/install-$cmd.log) ..."
  # Called alone (a benchmark's opt-level-3 broker) on a fresh checkout, nothing made it yet.
  mkdir -p "$LOGS"
  local started=$SECONDS
  # Each server builds in its own target dir: the installs run side by side, and none ever waits
  # on the workspace build's lock.
  CARGO_TARGET_DIR=$STATE/cargo-install-$cmd \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=$SERVER_OPT_LEVEL CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    nice -n "${INSTALL_NICE:-0}" \
    cargo install "$cmd" --version "$version" --locked --force --timings "$@" \
    >"$LOGS/install-$cmd.log" 2>&1 || die "cargo install $cmd failed, see $LOGS/install-$cmd.log"
  echo "$SERVER_OPT_LEVEL" >"$CARGO_BIN/.adclick-opt-level-$cmd"
  # What each crate cost (cargo's --timings report): where a first run's minutes go.
  cp "$STATE/cargo-install-$cmd/cargo-timings/cargo-timing.html" "$LOGS/install-$cmd-timings.html" || true
  rm -rf "$STATE/cargo-install-$cmd"
  say "installed $cmd $version in $((SECONDS - started))s"
}

# need_benchmark_servers CMD...: refuses to benchmark against servers built below opt-level 3 (a
# slower broker would be measured as part of adclick), naming the command that rebuilds them.
need_benchmark_servers() {
  local cmd
  for cmd in "$@"; do
    (($(server_opt_level "$cmd") >= 3)) ||
      die "$cmd was built at opt-level $(server_opt_level "$cmd") for tests; benchmarks need opt-level 3: ADCLICK_SERVER_OPT_LEVEL=3 deploy/local/install, then deploy/local/down and up"
  done
}
