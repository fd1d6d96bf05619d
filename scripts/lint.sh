#!/usr/bin/env bash
# `make lint`: actionlint over .github/workflows/. actionlint is built once with
# `go install github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION` into .bin/
# (the PyPI wrapper downloads a release binary at install time, which fails here).
# A second run builds nothing. Exit 2 with one line when Go is missing; actionlint's own
# status otherwise (1: the workflows have problems, printed one per line).
set -euo pipefail
cd "$(dirname "$0")/.."
ACTIONLINT_VERSION=v1.7.12
BIN=.bin/actionlint
STAMP=.bin/.actionlint-$ACTIONLINT_VERSION

die() { echo "lint: $1" >&2; [ -n "${2:-}" ] && echo "Hint: $2" >&2; exit 2; }

if [ ! -x "$BIN" ] || [ ! -f "$STAMP" ]; then
  command -v go >/dev/null || die "Go toolchain not found: needed to build actionlint" \
    "install Go (apt-get install golang), or put actionlint $ACTIONLINT_VERSION at $BIN"
  echo "lint: building actionlint $ACTIONLINT_VERSION with go install"
  mkdir -p .bin
  tmp=$(mktemp -d)
  GOBIN="$tmp" go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" \
    || { rm -rf "$tmp"; die "go install of actionlint $ACTIONLINT_VERSION failed" "check access to the Go module proxy"; }
  mv "$tmp/actionlint" "$BIN"
  rm -rf "$tmp"
  rm -f .bin/.actionlint-*
  touch "$STAMP"
fi
shopt -s nullglob
files=(.github/workflows/*.yml .github/workflows/*.yaml)
[ ${#files[@]} -gt 0 ] || die "no workflow files in .github/workflows"
"$BIN" -no-color -oneline "${files[@]}"
echo "lint: actionlint $ACTIONLINT_VERSION: ${#files[@]} workflow(s) clean"
