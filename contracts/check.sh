#!/bin/sh
# Recompiles the contracts into a temporary directory and fails if the committed build/
# differs from what the sources compile to. CI runs it; needs only node and npm.
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node compile.js "$tmp" >/dev/null
if ! diff -r build "$tmp"; then
    echo "contracts/check.sh: contracts/build differs from what the Tolk sources compile to;" >&2
    echo "run contracts/build.sh and commit contracts/build" >&2
    exit 1
fi
echo "contracts/check.sh: build/ matches the sources"
