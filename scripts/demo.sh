#!/usr/bin/env bash
# Runs Herald's main job end to end on loopback: see scripts/demo.ts for what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/cli/main.js ] || npm run build
exec npx tsx scripts/demo.ts
