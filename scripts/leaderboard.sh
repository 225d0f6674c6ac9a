#!/usr/bin/env bash
# The runs behind the committed leaderboard (results/ and site/). Every result also records the
# exact command that made it. CPU settings are small and declared (limits, calibration size); they
# are part of each result's protocol/params, so they are never ranked with full-protocol runs.
#   bash scripts/leaderboard.sh [llm|struct|ir|all]
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export HARNESS_DATA_DIR="${HARNESS_DATA_DIR:-$(cd .. && pwd)/shared/data}"
H=".venv/bin/harness"
PART="${1:-all}"
CAL="nsamples=32,seqlen=512,calibration=c4-sample1k"
ZS=(boolq rte hellaswag winogrande arc_easy arc_challenge openbookqa piqa)
ZS_TASKS=(); ZS_LIMITS=()
for t in "${ZS[@]}"; do ZS_TASKS+=(--task "$t"); ZS_LIMITS+=(--limit "$t=50"); done

llm_run() {  # method params [zero-shot too?]
  local method="$1" params="$2" zs="${3:-}"
  local extra=()
  [ -n "$zs" ] && extra=("${ZS_TASKS[@]}" "${ZS_LIMITS[@]}")
  $H run --method "$method" ${params:+--params "$params"} --model smollm2-135m \
     --task wikitext2 --limit wikitext2=8 "${extra[@]}" --no-progress || echo "run failed: $method $params"
}

if [ "$PART" = llm ] || [ "$PART" = all ]; then
  llm_run dense "" zs
  for m in magnitude wanda sparsegpt; do
    p=""; [ "$m" != magnitude ] && p="$CAL,"
    llm_run "$m" "${p}sparsity=0.5" zs
    llm_run "$m" "${p}sparsity=0.5,pattern=2:4" zs
  done
  for m in magnitude wanda sparsegpt; do
    p=""; [ "$m" != magnitude ] && p="$CAL,"
    llm_run "$m" "${p}sparsity=0.3" zs
    llm_run "$m" "${p}sparsity=0.7" zs
  done
fi

if [ "$PART" = struct ] || [ "$PART" = all ]; then
  # methods that change the model's shape: quality (wikitext2) and CPU latency in one run each
  for spec in "shortgpt|blocks=3" "shortgpt|blocks=6" "angular|blocks=6" "flap|fraction=0.2" \
              "flap|fraction=0.34,scope=both" "sleb|blocks=3,nsamples=4,seqlen=256"; do
    m="${spec%%|*}"; p="${spec#*|}"
    $H run --method "$m" --params "$p" --model smollm2-135m --task wikitext2 --task llm-latency \
       --limit wikitext2=8 --no-progress || echo "run failed: $m $p"
  done
  # latency of the unpruned model, and of masked (unstructured / 2:4) models run dense on CPU
  $H run --method dense --model smollm2-135m --task llm-latency --no-progress || true
  $H run --method dense --model config:smollm2-135m --task llm-latency --no-progress || true
  $H run --method magnitude --params sparsity=0.5,pattern=2:4 --model smollm2-135m --task llm-latency --no-progress || true
fi

if [ "$PART" = ir ] || [ "$PART" = all ]; then
  for t in vaswani cranfield cisi cacm scifact sciq-derived; do
    for alg in ranked_or maxscore wand block_max_wand block_max_maxscore; do
      $H run --method bm25 --params "query_algorithm=$alg" --task "$t" --no-progress || true
    done
    $H run --method bm25s --task "$t" --no-progress || true
  done
  for t in sciq-derived vaswani cacm cisi cranfield scifact; do
    $H run --method splade --task "$t" --no-progress || true
    $H run --method dense-retrieval --task "$t" --no-progress || true
  done
  for t in trec-dl-2019 trec-dl-2020; do
    $H run --method first-stage --task "$t" --no-progress || true   # the baseline row
    $H run --method bi-encoder --task "$t" --no-progress || true
  done
  # LLM rerankers on 2 CPU cores: QLM reranks the whole top 100 (~12 min for DL19); PRP-sliding
  # (10 passes) reranks the top 20, a declared depth (the top 100: an estimated hour or more per collection here)
  for t in trec-dl-2019 trec-dl-2020; do
    $H run --method qlm --task "$t" --no-progress || true
    $H run --method prp --params variant=sliding,depth=20 --task "$t" --no-progress || true
  done
fi
