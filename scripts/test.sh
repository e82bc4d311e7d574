#!/usr/bin/env bash
# One command from a fresh clone: set up, then run the whole test suite (and ruff).
# As root with apt available (CI), it also installs Debian's chromium and chromium-driver (HTML report
# rendering test, `benchrun view` in a browser),
# postgresql (shared-ledger tests), strace (SIGKILL inside a ledger commit) and bubblewrap (the sandbox
# that runs model-written code); without them those tests skip (or skip that one check) and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
  command -v pg_ctlcluster >/dev/null 2>&1 || [ -d /usr/lib/postgresql ] || missing+=(postgresql)
  command -v strace >/dev/null 2>&1 || missing+=(strace)
  command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "test: installing ${missing[*]} from Debian" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
      || echo "test: could not install ${missing[*]}; the tests that need them will skip" >&2
  fi
fi
export LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check src tests benchmarks
exec .venv/bin/python -m pytest -q "$@"
