#!/usr/bin/env bash
# GPU latency runs behind the README's GPU figures (dense, 50% unstructured, 2:4 dense and with 2:4
# kernels, ShortGPT layer removal, FLAP width pruning; dynamic and static decode), on random-weight
# config: models, which are labelled latency-only. Run on a CUDA machine from the repository root.
# With the device tool (the GPU image has torch/transformers but no internet): here
# `bash scripts/device_wheels.sh`, then
#   run(command="bash scripts/gpu_latency.sh", carry=[".whl"])
# and unpack the returned gpu-results.tgz into results/ here (`tar xzf ... -C results`), then
# `harness validate results` and `harness report`.
# Overrides: MODELS="config:llama-2-7b config:smollm2-135m" DEVICE=cuda DTYPE=bfloat16.
# PARTS="static pruned" (default: both):
#   static: for each of STATIC_MODELS (default "config:llama-2-7b config:llama-3-8b") the dense model
#     with llm-latency (dynamic decode: an eager forward per token, growing KV cache) and
#     llm-latency-static (StaticCache + torch.compile(mode="reduce-overhead"): CUDA graphs) in one
#     process (and llm-latency-cudagraph: the eager step captured as one CUDA graph, no compile),
#     and ShortGPT on STATIC_PRUNED (default llama-2-7b, 8 of 32 blocks) with both. Every decode figure carries
#     its memory-bandwidth bound and the achieved percentage (efficiency.latency.decode).
#   pruned: the method loop over MODELS (dense and ShortGPT of llama-2-7b are skipped there when
#     "static" ran them).
# Rough GPU time (H100/H200, bf16), per 7B/8B process: start and model build < 1 min; a dynamic
# decode measurement (8 runs x 128 tokens at ~30 tok/s) ~35 s; a static compile ~1-2 min, then
# seconds. "static" is 3 processes (~6 min); run PARTS=static alone if the budget is short.
# DRY_RUN=1 prints the harness commands instead of running them (no GPU needed).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ] && ! python3 -c "import pydantic" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
MODELS="${MODELS:-config:llama-2-7b config:smollm2-135m}"
STATIC_MODELS="${STATIC_MODELS:-config:llama-2-7b config:llama-3-8b}"
STATIC_PRUNED="${STATIC_PRUNED-config:llama-2-7b}"   # ShortGPT (8 blocks) with both decodes; empty: none
PARTS="${PARTS:-static pruned}"
DEVICE="${DEVICE:-cuda}"
DTYPE="${DTYPE:-bfloat16}"
DRY_RUN="${DRY_RUN:-}"
RES="${OUT:+$OUT/results}"
RES="${RES:-results}"
# random-weight models calibrate on random token ids (the default for config: models)
CAL="nsamples=8,seqlen=512"

has_part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
harness() {  # one harness command (printed instead with DRY_RUN); a failure is reported, not fatal
  local what="$1"; shift
  if [ -n "$DRY_RUN" ]; then echo "$PY -m harness $*"; return 0; fi
  $PY -m harness "$@" || echo "run failed: $what"
}

if [ -z "$DRY_RUN" ]; then
  $PY -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
fi

if has_part static; then
  for model in $STATIC_MODELS; do
    common=(--model "$model" --device "$DEVICE" --dtype "$DTYPE" --results "$RES" --no-progress)
    # dynamic, then static (torch.compile), then static (eager step as one CUDA graph; last: a failed
    # capture cannot disturb the others) decode of the same dense model in one process
    harness "dense static $model" run --method dense --task llm-latency --task llm-latency-static \
      --task llm-latency-cudagraph "${common[@]}"
  done
  if [ -n "$STATIC_PRUNED" ]; then
    common=(--model "$STATIC_PRUNED" --device "$DEVICE" --dtype "$DTYPE" --results "$RES" --no-progress)
    harness "shortgpt static $STATIC_PRUNED" run --method shortgpt --params "blocks=8,$CAL" \
      --task llm-latency --task llm-latency-static --task llm-latency-cudagraph "${common[@]}"
  fi
fi

if has_part pruned; then
  for model in $MODELS; do
    common=(--model "$model" --device "$DEVICE" --dtype "$DTYPE" --results "$RES" --no-progress)
    blocks=8; [ "$model" = config:smollm2-135m ] && blocks=7   # about a quarter of the blocks
    done_static=""; if has_part static && [ "$model" = "$STATIC_PRUNED" ]; then done_static=1; fi
    [ -n "$done_static" ] || harness "dense $model" run --method dense --task llm-latency "${common[@]}"
    harness "magnitude 0.5 $model" run --method magnitude --params sparsity=0.5 --task llm-latency "${common[@]}"
    # the same 2:4 model timed with dense kernels, then dense-vs-2:4 kernels in one process
    harness "magnitude 2:4 $model" run --method magnitude --params sparsity=0.5,pattern=2:4 --task llm-latency \
      --task llm-latency-2to4 "${common[@]}"
    [ -n "$done_static" ] || harness "shortgpt $model" run --method shortgpt --params "blocks=$blocks,$CAL" \
      --task llm-latency "${common[@]}"
    harness "flap $model" run --method flap --params "fraction=0.2,$CAL" --task llm-latency "${common[@]}"
  done
fi
if [ -z "$DRY_RUN" ] && [ -n "${OUT:-}" ] && [ -d "$RES" ]; then
  tar czf "$OUT/gpu-results.tgz" -C "$RES" . && echo "results packed in \$OUT/gpu-results.tgz"
fi
