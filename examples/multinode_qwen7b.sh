#!/usr/bin/env bash
# O1-Pruner training of a Qwen2.5-7B-class model on several nodes: TP=2 x PP=2 inside each node
# (8 GPUs -> data parallel 2 per node), data parallel across nodes. Run on every node:
#   MASTER_ADDR=node0 NNODES=4 NODE_RANK=$i bash examples/multinode_qwen7b.sh
# The checkpoint, dataset and --save folder must be on a shared filesystem.
set -euo pipefail
: "${MASTER_ADDR:?address of node 0}" "${NNODES:?number of nodes}" "${NODE_RANK:?this node}"
MASTER_PORT=${MASTER_PORT:-29500}
WORK=${WORK:-runs/qwen7b}
torchrun --nnodes "$NNODES" --node-rank "$NODE_RANK" --nproc-per-node 8 \
    --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" \
    -m megatron_o1p train --loss o1-pruner \
    --load "$WORK/ref_mcore" --data "$WORK/data/train.parquet" --save "$WORK/train" \
    --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --sequence-parallel \
    --micro-batch-size 1 --global-batch-size 32 --seq-length 4096 \
    --lr 2e-7 --min-lr 0 --lr-decay-style cosine --lr-warmup-fraction 0.1 --train-epochs 1 \
    --bf16 --epsilon 0.2 --save-interval 50 --log-interval 1 --tensorboard-dir "$WORK/tb"
