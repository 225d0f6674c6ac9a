#!/usr/bin/env bash
# Wheels the GPU image lacks for `harness run --task llm-latency` (it has torch, transformers, pandas,
# jinja2, pyyaml, tqdm, attrs): pydantic and its three dependencies (typed tasks and results). Downloads them into .whl/ (gitignored) for the device tool's `carry`;
# scripts/gpu_latency.sh installs them there. Needs PyPI here; pins the versions this venv uses.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=".venv/bin/python"
pins=()
for pkg in pydantic pydantic-core annotated-types typing-inspection; do
  pins+=("$pkg==$($PY -c "import importlib.metadata as m; print(m.version('$pkg'))")")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "${pins[@]}"
ls -la .whl
