#!/usr/bin/env bash
# CI step for the compose backend (called from .ci/run): `make test-compose` when a Docker
# API can be had (Docker, or podman installed and started here), otherwise one line saying
# why it is skipped, exit 0. Bounded in time; leaves no podman service, conmon or container.
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=${CI_COMPOSE_TIMEOUT:-960}  # make test-compose: its pytest bound (840 s) + service, images, reap
STATE=${PODMAN_STATE:-$PWD/.run/podman}
STARTED=0

skip() { echo "ci-compose: skipped: $1"; exit 0; }

cleanup() {
  if [ "$STARTED" = 1 ]; then bash scripts/podman-service.sh stop --force >/dev/null 2>&1 || true; fi
  # Anything still running from our podman state (service, conmon of a container) is a leak.
  local left
  left=$(pgrep -af "$STATE" | grep -v "pgrep" || true)
  if [ -n "$left" ]; then
    echo "ci-compose: FAIL: processes left behind:" >&2
    echo "$left" >&2
    exit 1
  fi
}

if [ ! -x .venv/bin/python ]; then make setup >/dev/null; fi
reason=$(.venv/bin/python -c 'from harness.env.compose import docker_unavailable_reason as r; print(r() or "")')
if [ -n "$reason" ]; then
  if [ "$(id -u)" != 0 ] && ! command -v podman >/dev/null; then
    skip "no Docker API ($reason), podman is not installed and installing it needs root"
  fi
  out=$(timeout 400 bash scripts/podman-service.sh start 2>&1) || {
    rc=$?
    [ "$rc" = 124 ] && skip "podman did not install/start within 400s"
    skip "$(echo "$out" | grep -m1 'cannot use podman' || echo "$out" | tail -1)"
  }
  STARTED=1
  eval "$(echo "$out" | grep '^export ')"
fi
trap cleanup EXIT
timeout --kill-after=15 "$LIMIT" make test-compose || {
  rc=$?
  [ "$rc" = 124 ] && echo "ci-compose: FAIL: make test-compose did not finish within ${LIMIT}s" >&2
  exit "$rc"
}
