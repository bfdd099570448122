#!/usr/bin/env bash
# Create .venv with interlock and its test tools, and the npm upstream used by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
if command -v npm >/dev/null; then
  (cd tests/npm && npm ci --silent --no-audit --no-fund)
fi
