#!/usr/bin/env bash
# One command from a fresh clone: set up, then run the quickstart on the embedded local model
# (SmolLM2-135M-Instruct, served on 127.0.0.1; no API key, no network).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1
echo "quickstart: the judge is the same 135M-parameter local model; expect benchrun to flag it as a" \
     "DEGENERATE JUDGE (its scores carry no information). This shows the workflow, not model quality." >&2
exec .venv/bin/benchrun run runs/quickstart.yaml "$@"
