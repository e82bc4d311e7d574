#!/usr/bin/env bash
# One command from a fresh clone: set up, then run the quickstart on the embedded local model
# (SmolLM2-135M-Instruct, served on 127.0.0.1; no API key, no network).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1
exec .venv/bin/benchrun run runs/quickstart.yaml "$@"
