#!/usr/bin/env bash
# The main job, offline: detect and verify the local models, write a scratch registry, validate it, build the site.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
out=${1:-scratch}
.venv/bin/python -m builder --models builder/offline.yaml --registry "$out/registry"
.venv/bin/swindex validate "$out/registry"
.venv/bin/swindex site build --registry "$out/registry" --output "$out/site"
echo "registry: $out/registry   site: $out/site/index.html"
