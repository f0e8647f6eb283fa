#!/usr/bin/env bash
# Create .venv with swindex and everything its tests need (torch from the pinned release).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# TORCH_INDEX_URL (optional): an index serving CPU-only torch wheels, where the default index would pick a CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
.venv/bin/python -m pip install -q -e ".[dev]"
