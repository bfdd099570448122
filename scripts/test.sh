#!/usr/bin/env bash
# The README's test command: set up, lint, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest -q "$@"
