#!/usr/bin/env bash
# O1-Pruner on Qwen3-30B-A3B (mixture of experts: 48 layers of 128 experts, top 8; 30.5B
# parameters, 3.3B active per token) in thinking mode, on two nodes of 8 GPUs (80 GB each).
# Training lays the dense part (attention, embeddings, routers) over TP=2 with sequence
# parallelism x DP=8, and the experts over EP=16 (8 whole experts per GPU, expert TP 1).
# Per-GPU memory from the README's "Qwen3-30B-A3B on two nodes" (arithmetic, not measured):
# about 66 GB in training. On one node use NNODES=1 EP=8 FREEZE=24 (the last 24 layers train).
# Run the same command on every node:
#   MODEL=/models/Qwen3-30B-A3B PROBLEMS=/data/math_train.jsonl BENCH=/data/math500.jsonl \
#       MASTER_ADDR=node0 NNODES=2 NODE_RANK=$i bash examples/qwen3_30b_a3b.sh
set -euo pipefail
MODEL=${MODEL:?HF folder of Qwen3-30B-A3B}
PROBLEMS=${PROBLEMS:?problems file (JSONL/parquet) or a datasets name}
BENCH=${BENCH:?evaluation problems file, e.g. MATH-500}
: "${MASTER_ADDR:?address of node 0}" "${NNODES:?number of nodes}" "${NODE_RANK:?this node}"
MASTER_PORT=${MASTER_PORT:-29500}
WORK=${WORK:-runs/qwen3_30b_a3b}  # on a shared filesystem: every node reads and writes it
GPUS=${GPUS:-8}
EP=${EP:-16}
FREEZE=${FREEZE:-}
K=${K:-16}
LAMBDA=${LAMBDA:-2}
LR=${LR:-2e-7}
MAX_TOKENS=${MAX_TOKENS:-8192}
SEQ=${SEQ:-8704}
THINKING=${THINKING:---enable-thinking}
RUN=(torchrun --nnodes "$NNODES" --node-rank "$NODE_RANK" --nproc-per-node "$GPUS"
     --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" -m megatron_o1p)
FREEZE_FLAGS=()
if [ -n "$FREEZE" ]; then FREEZE_FLAGS=(--freeze-layers "$FREEZE"); fi

if [ "$NODE_RANK" = 0 ]; then
  # 1. Convert (CPU, one expert at a time: about one 0.6 GB embedding of RAM; the checkpoint
  #    is 61 GB in bf16). Checks TP=2 (32 heads, 4 KV heads) and EP (128 experts).
  o1p convert hf-to-mcore --hf-dir "$MODEL" --out "$WORK/ref_mcore" \
      --tensor-model-parallel-size 2 --expert-model-parallel-size "$EP"
  # 2. Sample: one vLLM engine per pair of GPUs (TP=2: 30.5 GB of bf16 weights per GPU; KV
  #    cache 2 x 48 layers x 4 heads x 128 x 2 B = 96 KiB per token, halved over TP).
  for i in $(seq 0 $((GPUS / 2 - 1))); do
    CUDA_VISIBLE_DEVICES=$((2 * i)),$((2 * i + 1)) o1p sample --model "$MODEL" \
        --problems "$PROBLEMS" --preset math --num-samples "$K" --temperature 0.5 --top-p 0.8 \
        --max-tokens "$MAX_TOKENS" --max-model-len "$SEQ" "$THINKING" --seed 0 \
        --tensor-parallel-size 2 --num-shards $((GPUS / 2)) --shard-index "$i" \
        --out "$WORK/rollouts" &
  done
  wait
  # 3-5. Grade (the answer after </think>), analyze, build the scored dataset.
  o1p grade "$WORK/rollouts" "$WORK/graded"
  o1p analyze --rollouts "$WORK/graded" --out "$WORK/analysis"
  o1p build-dataset --rollouts "$WORK/graded" --out "$WORK/data/train.parquet" \
      --lambda "$LAMBDA" --rows-per-problem 2 --reward-clip -2 4 --normalize zscore --seed 0
fi
# (the other nodes wait for node 0's dataset: a job scheduler's dependency, or this loop)
until [ -f "$WORK/data/train.parquet" ]; do sleep 30; done
# 6. Reference log-probs: forward only, the training layout.
"${RUN[@]}" ref-logprobs --load "$WORK/ref_mcore" --data "$WORK/data/train.parquet" \
    --tensor-model-parallel-size 2 --expert-model-parallel-size "$EP" \
    --seq-length "$SEQ" --bf16 --rollouts "$WORK/rollouts"
# 7. Train: TP=2 + SP x DP, experts over EP ranks; the load-balancing loss (the model's
#    router_aux_loss_coef, 0.001) is logged as moe/aux_loss and per layer in TensorBoard.
"${RUN[@]}" train --loss o1-pruner --load "$WORK/ref_mcore" --data "$WORK/data/train.parquet" \
    --save "$WORK/train" --tensor-model-parallel-size 2 --sequence-parallel \
    --expert-model-parallel-size "$EP" --recompute-activations "${FREEZE_FLAGS[@]}" \
    --micro-batch-size 1 --global-batch-size 32 --seq-length "$SEQ" \
    --lr "$LR" --min-lr 0 --lr-decay-style cosine --lr-warmup-fraction 0.1 --train-epochs 1 \
    --bf16 --epsilon 0.2 --save-interval 50 --tensorboard-dir "$WORK/tb"
if [ "$NODE_RANK" = 0 ]; then
  # 8-10. Export (one expert at a time), evaluate both models the same way, compare.
  o1p convert mcore-to-hf --mcore-dir "$WORK/train" --out "$WORK/pruned_hf"
  for name in baseline:"$MODEL" o1p:"$WORK/pruned_hf"; do
    CUDA_VISIBLE_DEVICES=0,1 o1p evaluate --model "${name#*:}" --benchmark math500="$BENCH" \
        --preset math --num-samples 4 --temperature 0.6 --top-p 0.95 --seed 0 \
        --tensor-parallel-size 2 --max-tokens "$MAX_TOKENS" --max-model-len "$SEQ" \
        "$THINKING" --out "$WORK/eval/${name%%:*}"
  done
  o1p compare --baseline "$WORK/eval/baseline" "$WORK/eval/o1p" --out "$WORK/compare"
fi
