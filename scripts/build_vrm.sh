#!/usr/bin/env bash
# Build the page's VRM bundle, ui/vrm/three-vrm.js: three.js and @pixiv/three-vrm at the exact
# versions of package-lock.json, bundled by esbuild (ui/vrm/src/bundle.js is the entry). Needs
# the network only when node_modules is missing or older than the lockfile; does nothing when
# the bundle is newer than the lockfile and its entry. The bundle is not committed (.gitignore).
#   usage: bash scripts/build_vrm.sh [--require]   (--require: fail where npm is missing)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=ui/vrm/three-vrm.js
if [ -f "$OUT" ] && [ "$OUT" -nt package-lock.json ] && [ "$OUT" -nt ui/vrm/src/bundle.js ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "note: npm is missing (apt-get install nodejs npm): no VRM bundle, VRM models cannot be shown" >&2
  [ "${1:-}" = --require ] && exit 1
  exit 0
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run -s build:vrm
echo "VRM bundle: $OUT ($(du -k "$OUT" | cut -f1) KiB)"
