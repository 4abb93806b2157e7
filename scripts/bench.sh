#!/usr/bin/env bash
# Set up (if needed) and run `m5stream bench`: with no arguments it generates the embedded
# demo dataset in the cache and benchmarks it. Arguments are passed to `m5stream bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
exec .venv/bin/m5stream bench "$@"
