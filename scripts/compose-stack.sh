#!/usr/bin/env bash
# Behind the compose-* make targets (compose/compose.mk):
#
#   compose-stack.sh images   build the local FROM-scratch images (needs a Docker API and Go)
#   compose-stack.sh up       bring up the stack `nats-chaos` and leave it running (CLUSTER=3: the cluster)
#   compose-stack.sh down     take it down (and the podman service, if `up` started it)
#   compose-stack.sh test     run tests/compose against real stacks, then clean up everything
#
# The stack itself is `harness env up --env compose --detach` (a background harness process
# holds it; `harness env down` ends both), images are `harness env images`, leftovers of
# dead runs `harness env reap --env compose`.
#
# The Docker API: $DOCKER_HOST, else Docker's socket, else a podman service started here
# (scripts/podman-service.sh). On podman the images are always the local builds (nothing is
# pulled); on Docker they are the official ones unless you built the local ones or set
# NATS_IMAGE / TOXIPROXY_IMAGE. Every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HARNESS=.venv/bin/harness
STATE=.run/compose
UP_MARK=$STATE/podman-started-by-up
# tests/compose as a whole: 600 s was too little by 20:30 UTC 2026-12-04 — 26 of 38 tests had run in
# 600 s (test_compose_reference alone 417 s: the reference set on both backends, one at a time; the
# compose-cluster tests ~100 s). 840 s leaves the rest (~80 s) a margin, inside ci-compose.sh's limit.
TEST_TIMEOUT=${COMPOSE_TEST_TIMEOUT:-840}
mkdir -p "$STATE"

say() { echo "compose: $*" >&2; }
STARTED_PODMAN=0

# Is a Docker API reachable (DOCKER_HOST, Docker's socket, or our podman socket)?
api_reason() {
  "$PY" -c 'from harness.env.compose import docker_unavailable_reason as r; print(r() or "")'
}

# Make sure a Docker API answers; start our podman service if none does.
use_api() {
  local reason; reason=$(api_reason)
  if [ -z "$reason" ]; then
    say "Docker API: $("$PY" -c 'from harness.env.compose import docker_host; print(docker_host())')"
    return 0
  fi
  say "$reason; starting a podman service instead"
  eval "$(bash scripts/podman-service.sh start)"
  STARTED_PODMAN=1
}

on_podman() {
  case "${DOCKER_HOST:-}" in *podman*) return 0 ;; esac
  "$PY" -c 'from harness.env.compose import docker_host; import sys; sys.exit("podman" not in docker_host())'
}

# On podman nothing can be pulled: build the local images and use them.
images_if_podman() {
  if on_podman || [ "${COMPOSE_IMAGES:-}" = local ]; then
    eval "$("$HARNESS" env images --exports)"
    say "images: $NATS_IMAGE, $TOXIPROXY_IMAGE"
  fi
}

stop_podman_if_started() {
  if [ "$STARTED_PODMAN" = 1 ]; then bash scripts/podman-service.sh stop; fi
}

case "${1:-}" in
  images)
    use_api
    trap stop_podman_if_started EXIT
    "$HARNESS" env images
    ;;
  up)
    use_api
    images_if_podman
    # Fixed ports if asked (e.g. `make compose-up CHAOS_PROXY_PORT=4222`), else free ones.
    ports=()
    for pair in proxy-port:CHAOS_PROXY_PORT nats-port:CHAOS_NATS_PORT monitor-port:CHAOS_MONITOR_PORT \
                api-port:CHAOS_TOXIPROXY_PORT; do
      var=${pair#*:}
      if [ -n "${!var:-}" ]; then ports+=("--${pair%%:*}" "${!var}"); fi
    done
    # CLUSTER=3: the 3-node cluster (compose/docker-compose.cluster.yml); its ports are chosen free.
    if [ -n "${CLUSTER:-}" ]; then ports+=("--cluster" "$CLUSTER"); fi
    if ! "$HARNESS" env up --env compose --detach --project "${COMPOSE_PROJECT:-nats-chaos}" "${ports[@]}"; then
      stop_podman_if_started; exit 2
    fi
    [ "$STARTED_PODMAN" = 1 ] && touch "$UP_MARK"
    if on_podman; then
      say "the podman service keeps running for the stack; \`make compose-down\` ends both"
      bash scripts/podman-service.sh env | sed 's/^/  /' >&2
    fi
    ;;
  down)
    # Only a compose environment: a local `harness env up` is not ours to stop.
    running=$("$PY" -c 'from harness.cli_env import read_state; s = read_state(); print(s.backend if s else "")')
    case "$running" in
      compose) "$HARNESS" env down ;;
      "") say "no compose stack of \`make compose-up\` is running: nothing to take down" ;;
      *) say "the environment \`harness env up\` runs is $running, not compose: left running" ;;
    esac
    if [ -f "$UP_MARK" ]; then
      "$HARNESS" env reap --env compose >&2 || true   # stacks of harness runs that died
      # Refuses (and keeps the mark) while another session's containers still use it.
      bash scripts/podman-service.sh stop && rm -f "$UP_MARK"
    fi
    ;;
  test)
    use_api
    trap stop_podman_if_started EXIT
    images_if_podman
    "$HARNESS" env reap --env compose >&2 || true   # stacks of earlier runs that died
    rc=0
    # NATS_CHAOS_REQUIRE_COMPOSE: here a missing Docker API is an error, not a skip.
    NATS_CHAOS_REQUIRE_COMPOSE=1 timeout --kill-after=10 "$TEST_TIMEOUT" \
      "$PY" -m pytest tests/compose -p no:cacheprovider ${ARGS:-} || rc=$?
    # Nothing of the runs may remain: a leftover is a failure (and is removed now).
    if ! "$HARNESS" env reap --env compose; then
      say "FAIL: compose stacks were left behind (removed now)"
      [ "$rc" = 0 ] && rc=1
    fi
    [ "$rc" = 124 ] && say "FAIL: tests/compose did not finish within ${TEST_TIMEOUT}s"
    exit "$rc"
    ;;
  *)
    echo "usage: $0 images|up|down|test" >&2; exit 2 ;;
esac
