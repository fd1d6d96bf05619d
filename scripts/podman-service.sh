#!/usr/bin/env bash
# A Docker-compatible API without Docker: a podman system service on a unix socket.
#
#   scripts/podman-service.sh start    install podman + docker-compose if missing (Debian, root),
#                                      start the service, wait for /_ping, print DOCKER_HOST=...
#   scripts/podman-service.sh stop     end the service this script started (and only that one);
#                                      refuses while containers exist, unless --force
#   scripts/podman-service.sh env      print the DOCKER_HOST/CONTAINERS_CONF lines (eval-able)
#   scripts/podman-service.sh status   exit 0 if our service answers /_ping
#
# Everything lives in $PODMAN_STATE (default .run/podman): containers.conf, storage.conf,
# image store, runroot, network configs, the socket, service.pid and service.log. Nothing
# of the machine's own podman set-up (/etc/containers, /var/lib/containers) is touched, so
# a developer's own containers are safe, and `rm -rf .run/podman` removes every trace.
# Exit status: 0 ok, 3 podman cannot be used here (the one line on stderr says why).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=${PODMAN_STATE:-$ROOT/.run/podman}
SOCK=$STATE/podman.sock
PIDFILE=$STATE/service.pid
LOG=$STATE/service.log
START_TIMEOUT=${PODMAN_START_TIMEOUT:-30}
INSTALL_TIMEOUT=${PODMAN_INSTALL_TIMEOUT:-300}
# runc: crun is podman's default, but Debian's podman works reliably with runc and we install it.
# iptables: netavark needs it for the port forwarding of published ports.
PACKAGES="podman docker-compose runc netavark aardvark-dns iptables"

say() { echo "podman-service: $*" >&2; }
cannot() { echo "podman-service: cannot use podman here: $1" >&2; exit 3; }

env_lines() {
  echo "export CONTAINERS_CONF=$STATE/containers.conf"
  echo "export CONTAINERS_STORAGE_CONF=$STATE/storage.conf"
  echo "export DOCKER_HOST=unix://$SOCK"
}

ping_ok() {
  [ -S "$SOCK" ] && curl -sf --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1
}

# The pid file names our service only if that pid still runs `podman system service` on our socket.
our_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid; pid=$(cat "$PIDFILE")
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "system service .*unix://$SOCK" || return 1
  echo "$pid"
}

install_if_missing() {
  local missing=""
  command -v podman >/dev/null || missing="$missing podman"
  command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing="$missing docker-compose"
  # runc and iptables live in /usr/sbin, which a non-root PATH may lack.
  command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing="$missing runc"
  command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || missing="$missing iptables"
  [ -z "$missing" ] && return 0
  command -v apt-get >/dev/null || cannot "missing:$missing, and no apt-get to install it (install podman and docker-compose by hand)"
  [ "$(id -u)" = 0 ] || cannot "missing:$missing, and installing needs root (sudo apt-get install -y $PACKAGES)"
  say "installing $PACKAGES (apt-get, up to ${INSTALL_TIMEOUT}s)"
  local out=$STATE/apt.log
  export DEBIAN_FRONTEND=noninteractive
  if ! timeout "$INSTALL_TIMEOUT" apt-get install -y --no-install-recommends $PACKAGES >"$out" 2>&1; then
    timeout "$INSTALL_TIMEOUT" apt-get update >>"$out" 2>&1 || true
    timeout "$INSTALL_TIMEOUT" apt-get install -y --no-install-recommends $PACKAGES >>"$out" 2>&1 \
      || cannot "apt-get install $PACKAGES failed: $(tail -1 "$out")"
  fi
}

write_config() {
  mkdir -p "$STATE/storage" "$STATE/runroot" "$STATE/tmp" "$STATE/networks"
  # Settings that make rootful podman work in a plain VM/CI box (see compose/README.md):
  # runc (crun not installed), cgroupfs (no systemd to ask for scopes), file events (no
  # journald), no default ulimits (the distribution default asks for limits above the hard
  # limit a container runtime may set here), netavark + aardvark-dns (compose's network needs
  # DNS so that toxiproxy reaches `nats:4222`).
  cat >"$STATE/containers.conf" <<EOF
# written by scripts/podman-service.sh
[containers]
default_ulimits = []
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$STATE/events.log"
tmp_dir = "$STATE/tmp"

[network]
network_backend = "netavark"
network_config_dir = "$STATE/networks"
EOF
  cat >"$STATE/storage.conf" <<EOF
# written by scripts/podman-service.sh
[storage]
driver = "${PODMAN_STORAGE_DRIVER:-overlay}"
graphroot = "$STATE/storage"
runroot = "$STATE/runroot"
EOF
}

start() {
  mkdir -p "$STATE"
  if our_pid >/dev/null && ping_ok; then
    say "already running (pid $(our_pid))"; env_lines; return 0
  fi
  install_if_missing
  write_config
  eval "$(env_lines)"
  rm -f "$SOCK"
  # setsid: the service outlives this script (make runs it in its own step) until `stop`.
  # podman-reaper.py makes it a child subreaper so that each container's conmon is reaped
  # when it ends (PID 1 of a minimal VM or CI container may never reap them).
  local py; py=$(command -v /usr/bin/python3 || command -v python3) || cannot "python3 not found"
  setsid "$py" "$ROOT/scripts/podman-reaper.py" podman system service --time=0 "unix://$SOCK" \
    </dev/null >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until ping_ok; do
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      cannot "podman system service exited at start: $(tail -3 "$LOG" | tr '\n' ' ')"
    fi
    if [ $SECONDS -ge $deadline ]; then
      stop >/dev/null 2>&1 || true
      cannot "no answer on $SOCK/_ping after ${START_TIMEOUT}s: $(tail -3 "$LOG" | tr '\n' ' ')"
    fi
    sleep 0.1
  done
  say "ready: podman $(podman --version | awk '{print $3}') API on unix://$SOCK (pid $(cat "$PIDFILE"))"
  env_lines
}

# Names of the containers the service still has (running or not), one line.
containers_left() {
  curl -sf --max-time 5 --unix-socket "$SOCK" 'http://d/v1.41/containers/json?all=1' 2>/dev/null \
    | tr ',' '\n' | sed -n 's/.*"Names":\["\/\{0,1\}\([^"]*\)".*/\1/p' | tr '\n' ' '
}

stop() {
  local pid
  if ! pid=$(our_pid); then
    rm -f "$PIDFILE"; say "no service of ours running"; return 0
  fi
  # Another session (a test run, a `make compose-up` stack) may still use the service:
  # stopping it under them breaks their teardown. --force when you mean it.
  local left; left=$(containers_left)
  if [ -n "$left" ] && [ "${1:-}" != --force ]; then
    say "not stopping: containers still exist: $left(take them down, or: $0 stop --force)"
    return 1
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid" 2>/dev/null || true; break; fi
    sleep 0.1
  done
  rm -f "$PIDFILE" "$SOCK"
  # podman's overlay driver bind-mounts its layer store onto itself; with the service gone
  # that mount is ours to undo, or the state folder (a CI clone, say) cannot be removed.
  if [ -z "$(containers_left)" ] && mountpoint -q "$STATE/storage/overlay" 2>/dev/null; then
    umount "$STATE/storage/overlay" 2>/dev/null || say "could not unmount $STATE/storage/overlay"
  fi
  say "stopped (pid $pid)"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  env) env_lines ;;
  status) our_pid >/dev/null && ping_ok ;;
  *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
