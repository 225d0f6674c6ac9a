#!/usr/bin/env bash
# GPU latency runs behind the README's GPU figures (dense, 50% unstructured, 2:4 dense and with 2:4
# kernels, ShortGPT layer removal, FLAP width pruning), on random-weight config: models, which are
# labelled latency-only. Run on a CUDA machine from the repository root. With the device tool (the
# GPU image has torch/transformers but no internet): here `bash scripts/device_wheels.sh`, then
#   run(command="bash scripts/gpu_latency.sh", carry=[".whl"])
# and unpack the returned gpu-results.tgz into results/ here (`tar xzf ... -C results`), then
# `harness validate results` and `harness report`.
# Overrides: MODELS="config:llama-2-7b config:smollm2-135m" DEVICE=cuda DTYPE=bfloat16.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ] && ! python3 -c "import pydantic" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
MODELS="${MODELS:-config:llama-2-7b config:smollm2-135m}"
DEVICE="${DEVICE:-cuda}"
DTYPE="${DTYPE:-bfloat16}"
RES="${OUT:+$OUT/results}"
RES="${RES:-results}"
# random-weight models calibrate on random token ids (the default for config: models)
CAL="nsamples=8,seqlen=512"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"

for model in $MODELS; do
  common=(--model "$model" --device "$DEVICE" --dtype "$DTYPE" --results "$RES" --no-progress)
  blocks=8; [ "$model" = config:smollm2-135m ] && blocks=7   # about a quarter of the blocks
  $PY -m harness run --method dense --task llm-latency "${common[@]}" || echo "run failed: dense $model"
  $PY -m harness run --method magnitude --params sparsity=0.5 --task llm-latency "${common[@]}" \
    || echo "run failed: magnitude 0.5 $model"
  # the same 2:4 model timed with dense kernels, then dense-vs-2:4 kernels in one process
  $PY -m harness run --method magnitude --params sparsity=0.5,pattern=2:4 --task llm-latency \
    --task llm-latency-2to4 "${common[@]}" || echo "run failed: magnitude 2:4 $model"
  $PY -m harness run --method shortgpt --params "blocks=$blocks,$CAL" --task llm-latency "${common[@]}" \
    || echo "run failed: shortgpt $model"
  $PY -m harness run --method flap --params "fraction=0.2,$CAL" --task llm-latency "${common[@]}" \
    || echo "run failed: flap $model"
done
if [ -n "${OUT:-}" ] && [ -d "$RES" ]; then
  tar czf "$OUT/gpu-results.tgz" -C "$RES" . && echo "results packed in \$OUT/gpu-results.tgz"
fi
