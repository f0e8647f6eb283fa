#!/usr/bin/env bash
# Set up, lint, and run the whole test suite (unit, model, CLI, site and browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "browser tests need Debian's chromium: sudo apt-get install chromium chromium-driver" >&2
  fi
fi
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check .  # lint rules: [tool.ruff] in pyproject.toml
.venv/bin/ruff format --check .  # one layout for every file: [tool.ruff] line-length
.venv/bin/mypy          # type check of the core modules: [tool.mypy] in pyproject.toml
exec .venv/bin/python -m pytest "$@"
