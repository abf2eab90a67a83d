#!/usr/bin/env bash
# O1-Pruner on a 7B model, the paper's Marco-o1-7B setting (full fine-tune), one node of 8 GPUs:
# K=16 samples at temperature 0.5 / top-p 0.8, lambda=2, lr 2e-7 cosine with 10% warmup,
# 1 epoch, global batch 32, seq 4096 (the official code cut at 3072/4096 tokens).
#   MODEL=/models/Marco-o1 PROBLEMS=/data/math_train.jsonl bash examples/pipeline_marco7b.sh
set -euo pipefail
MODEL=${MODEL:?HF folder of the reference model}
PROBLEMS=${PROBLEMS:?problems file (JSONL/parquet) or a datasets name}
WORK=${WORK:-runs/marco7b}
GPUS=${GPUS:-8}
K=${K:-16}
LAMBDA=${LAMBDA:-2}
LR=${LR:-2e-7}
SEQ=${SEQ:-4096}

o1p convert hf-to-mcore --hf-dir "$MODEL" --out "$WORK/ref_mcore" \
    --tensor-model-parallel-size 2 --pipeline-model-parallel-size 1
# Sampling: one vLLM engine per GPU (data parallel over problem shards).
for i in $(seq 0 $((GPUS - 1))); do
  CUDA_VISIBLE_DEVICES=$i o1p sample --model "$MODEL" --problems "$PROBLEMS" --preset math \
      --num-samples "$K" --temperature 0.5 --top-p 0.8 --max-tokens 8192 --seed 0 \
      --num-shards "$GPUS" --shard-index "$i" --out "$WORK/rollouts" &
done
wait
o1p grade "$WORK/rollouts" "$WORK/graded"
o1p build-dataset --rollouts "$WORK/graded" --out "$WORK/data/train.parquet" \
    --lambda "$LAMBDA" --rows-per-problem 2 --reward-clip -2 4 --normalize zscore --seed 0
torchrun --nproc-per-node "$GPUS" -m megatron_o1p ref-logprobs --load "$WORK/ref_mcore" \
    --data "$WORK/data/train.parquet" --tensor-model-parallel-size 2 --seq-length "$SEQ" \
    --bf16 --rollouts "$WORK/rollouts"
torchrun --nproc-per-node "$GPUS" -m megatron_o1p train --loss o1-pruner \
    --load "$WORK/ref_mcore" --data "$WORK/data/train.parquet" --save "$WORK/train" \
    --tensor-model-parallel-size 2 --micro-batch-size 1 --global-batch-size 32 \
    --seq-length "$SEQ" --lr "$LR" --min-lr 0 --lr-decay-style cosine --lr-warmup-fraction 0.1 \
    --train-epochs 1 --bf16 --epsilon 0.2 --save-interval 50 --tensorboard-dir "$WORK/tb"
o1p convert mcore-to-hf --mcore-dir "$WORK/train" --out "$WORK/pruned_hf"
