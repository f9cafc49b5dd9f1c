#!/bin/sh
# Compiles root.tolk and channel.tolk with the pinned @ton/tolk-js into build/.
# Needs only node and npm. Commit build/ afterwards: check.sh proves it matches the sources.
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
node compile.js build
