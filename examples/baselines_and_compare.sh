#!/usr/bin/env bash
# The paper's baselines (section 4.1) and its Table 2, after examples/pipeline_marco7b.sh has
# run in the same WORK folder (it leaves graded rollouts, data/{train,sft,dpo}.parquet, the
# reference checkpoint and the O1-Pruner model). Every baseline goes through the same stages:
#   - fast-solving prompt: the reference model, evaluated with --speed-prompt fast
#   - SFT: `o1p train --loss sft` on the 2 shortest correct samples per problem (sft.parquet)
#   - DPO: shortest correct vs longest sample per problem (dpo.parquet), with ref log-probs
# Benchmarks are problem files (JSONL/parquet) with MATH-style `problem`/`answer` columns, or
# GSM8K's `question`/`answer` (then --preset NAME=gsm8k):
#   MODEL=/models/Marco-o1 WORK=runs/marco7b MATH500=/data/math500.jsonl \
#   GSM8K=/data/gsm8k_test.jsonl bash examples/baselines_and_compare.sh
set -euo pipefail
MODEL=${MODEL:?HF folder of the reference model}
WORK=${WORK:-runs/marco7b}
GPUS=${GPUS:-8}
SEQ=${SEQ:-4096}
MATH500=${MATH500:?MATH-500 test file}
GSM8K=${GSM8K:?GSM8K test file}
BENCH=(--benchmark "math500=$MATH500" --benchmark "gsm8k=$GSM8K" --preset gsm8k=gsm8k)

train() {  # train NAME LOSS DATA LR
  torchrun --nproc-per-node "$GPUS" -m megatron_o1p train --loss "$2" \
      --load "$WORK/ref_mcore" --data "$3" --save "$WORK/$1" \
      --tensor-model-parallel-size 2 --micro-batch-size 1 --global-batch-size 32 \
      --seq-length "$SEQ" --lr "$4" --min-lr 0 --lr-warmup-fraction 0.1 --train-epochs 1 --bf16
  o1p convert mcore-to-hf --mcore-dir "$WORK/$1" --out "$WORK/$1_hf"
}

train sft sft "$WORK/data/sft.parquet" 2e-7
torchrun --nproc-per-node "$GPUS" -m megatron_o1p ref-logprobs --load "$WORK/ref_mcore" \
    --data "$WORK/data/dpo.parquet" --tensor-model-parallel-size 2 --seq-length "$SEQ" --bf16
train dpo dpo "$WORK/data/dpo.parquet" 2e-7

# Greedy evaluation (the paper's setting), vLLM tensor parallel over the node's GPUs.
evaluate() {  # evaluate MODEL OUT [extra flags]
  o1p evaluate --model "$1" --out "$2" "${BENCH[@]}" --tensor-parallel-size "$GPUS" \
      --max-tokens 8192 "${@:3}"
}
evaluate "$MODEL" "$WORK/eval/baseline"
evaluate "$MODEL" "$WORK/eval/fast-prompt" --speed-prompt fast
evaluate "$WORK/sft_hf" "$WORK/eval/sft"
evaluate "$WORK/dpo_hf" "$WORK/eval/dpo"
evaluate "$WORK/pruned_hf" "$WORK/eval/o1-pruner"

o1p compare --baseline "$WORK/eval/baseline" "$WORK/eval/fast-prompt" "$WORK/eval/sft" \
    "$WORK/eval/dpo" "$WORK/eval/o1-pruner" --out "$WORK/compare"
