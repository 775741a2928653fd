#!/usr/bin/env bash
# The benchmarks' own environment: seqae plus the peers it is measured against (not seqae dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-bench
.venv-bench/bin/pip install -q -e . "vector-quantize-pytorch==1.32.0"
