#!/usr/bin/env bash
# The whole test suite: set-up, lint (ruff), types (mypy), the layer contract (import-linter,
# contracts in pyproject.toml), unit + e2e (+ integration) tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check m5stream _m5stream_forkserver tests benchmarks examples
.venv/bin/ruff format --check m5stream _m5stream_forkserver tests
.venv/bin/mypy
# no cache: a graph is built in about a second, and a stale one would hide a broken contract
.venv/bin/lint-imports --no-cache --no-logo
# A private cache, so tests never reuse indexes or demo data from a developer's runs.
M5STREAM_CACHE="$(mktemp -d)"
export M5STREAM_CACHE
trap 'rm -rf "$M5STREAM_CACHE"' EXIT
.venv/bin/python -m pytest tests --timeout=900 -p no:cacheprovider "$@"
