#!/usr/bin/env bash
# O1-Pruner on Qwen3-8B in thinking mode (or DeepSeek-R1-0528-Qwen3-8B), one node of 8 GPUs
# (80 GB each). The paper's Marco-o1 recipe (K=16 at temperature 0.5 / top-p 0.8, lambda=2,
# lr 2e-7 cosine with 10% warmup, 1 epoch, global batch 32) with Qwen3's longer thoughts:
# responses up to 8192 tokens, so sequences of 8704 (prompt + response). Memory per GPU, from
# the README's "Qwen3-8B on one node": vLLM 16.4 GB of weights + KV cache; training TP=2 x DP=4
# with sequence parallelism, about 64 GB (needs Transformer Engine for the distributed optimizer).
#   MODEL=/models/Qwen3-8B PROBLEMS=/data/math_train.jsonl BENCH=/data/math500.jsonl \
#       bash examples/qwen3_8b_one_node.sh
set -euo pipefail
MODEL=${MODEL:?HF folder of Qwen3-8B}
PROBLEMS=${PROBLEMS:?problems file (JSONL/parquet) or a datasets name}
BENCH=${BENCH:?evaluation problems file, e.g. MATH-500}
WORK=${WORK:-runs/qwen3_8b}
GPUS=${GPUS:-8}
K=${K:-16}
LAMBDA=${LAMBDA:-2}
LR=${LR:-2e-7}
MAX_TOKENS=${MAX_TOKENS:-8192}
SEQ=${SEQ:-8704}
# Thinking is Qwen3's default; pass THINKING=--no-thinking to prune the non-thinking mode
# (refused for templates without the switch, e.g. DeepSeek-R1-0528-Qwen3-8B, which always thinks).
THINKING=${THINKING:---enable-thinking}

# 1. Convert (CPU, streams one tensor at a time: about one 1.2 GB embedding of RAM). Checks that
#    TP=2 divides Qwen3-8B's 32 heads, 8 KV heads, 12288 FFN and the padded vocab.
o1p convert hf-to-mcore --hf-dir "$MODEL" --out "$WORK/ref_mcore" --tensor-model-parallel-size 2
# 2. Sample: one vLLM engine per GPU (16.4 GB of bf16 weights; KV cache 144 KiB per token).
for i in $(seq 0 $((GPUS - 1))); do
  CUDA_VISIBLE_DEVICES=$i o1p sample --model "$MODEL" --problems "$PROBLEMS" --preset math \
      --num-samples "$K" --temperature 0.5 --top-p 0.8 --max-tokens "$MAX_TOKENS" \
      --max-model-len "$SEQ" "$THINKING" --seed 0 --num-shards "$GPUS" --shard-index "$i" \
      --out "$WORK/rollouts" &
done
wait
# 3-5. Grade (the answer after </think>; a response cut at MAX_TOKENS is incorrect), dataset.
o1p grade "$WORK/rollouts" "$WORK/graded"
o1p analyze --rollouts "$WORK/graded" --out "$WORK/analysis"
o1p build-dataset --rollouts "$WORK/graded" --out "$WORK/data/train.parquet" \
    --lambda "$LAMBDA" --rows-per-problem 2 --reward-clip -2 4 --normalize zscore --seed 0
# 6. Reference log-probs: forward only, TP=2 x DP=4 (8.2 GB of weights per GPU).
torchrun --nproc-per-node "$GPUS" -m megatron_o1p ref-logprobs --load "$WORK/ref_mcore" \
    --data "$WORK/data/train.parquet" --tensor-model-parallel-size 2 --seq-length "$SEQ" \
    --bf16 --rollouts "$WORK/rollouts"
# 7. Train: TP=2 with sequence parallelism x DP=4; selective recompute for 8704-token rows.
torchrun --nproc-per-node "$GPUS" -m megatron_o1p train --loss o1-pruner \
    --load "$WORK/ref_mcore" --data "$WORK/data/train.parquet" --save "$WORK/train" \
    --tensor-model-parallel-size 2 --sequence-parallel --recompute-activations \
    --micro-batch-size 1 --global-batch-size 32 --seq-length "$SEQ" \
    --lr "$LR" --min-lr 0 --lr-decay-style cosine --lr-warmup-fraction 0.1 --train-epochs 1 \
    --bf16 --epsilon 0.2 --save-interval 50 --tensorboard-dir "$WORK/tb"
# 8-10. Export, evaluate both models the same way, compare. Qwen3's card advises against
#    greedy decoding in thinking mode (endless repetition): 4 samples at its settings.
o1p convert mcore-to-hf --mcore-dir "$WORK/train" --out "$WORK/pruned_hf"
for name in baseline:"$MODEL" o1p:"$WORK/pruned_hf"; do
  CUDA_VISIBLE_DEVICES=0 o1p evaluate --model "${name#*:}" --benchmark math500="$BENCH" \
      --preset math --num-samples 4 --temperature 0.6 --top-p 0.95 --seed 0 \
      --max-tokens "$MAX_TOKENS" --max-model-len "$SEQ" "$THINKING" --out "$WORK/eval/${name%%:*}"
done
o1p compare --baseline "$WORK/eval/baseline" "$WORK/eval/o1p" --out "$WORK/compare"
