#!/usr/bin/env bash
# The paper's QwQ-32B setting: freeze fine-tune of the last 48 of 64 layers, K=12 samples,
# lambda=5, lr 2e-6 cosine, 1 epoch, global batch 32. Two nodes of 8 GPUs: TP=8 x PP=2.
#   MODEL=/models/QwQ-32B-Preview PROBLEMS=/data/math_train.jsonl MASTER_ADDR=node0 NODE_RANK=$i \
#       bash examples/freeze_qwq32b.sh
set -euo pipefail
MODEL=${MODEL:?HF folder}
PROBLEMS=${PROBLEMS:?problems file}
WORK=${WORK:-runs/qwq32b}
: "${MASTER_ADDR:?}" "${NODE_RANK:?}"
if [ "$NODE_RANK" = 0 ]; then
  o1p convert hf-to-mcore --hf-dir "$MODEL" --out "$WORK/ref_mcore" \
      --tensor-model-parallel-size 8 --pipeline-model-parallel-size 2
  o1p sample --model "$MODEL" --problems "$PROBLEMS" --preset math --num-samples 12 \
      --temperature 0.5 --top-p 0.8 --max-tokens 8192 --tensor-parallel-size 8 --out "$WORK/rollouts"
  o1p grade "$WORK/rollouts" "$WORK/graded"
  o1p build-dataset --rollouts "$WORK/graded" --out "$WORK/data/train.parquet" --lambda 5 \
      --rows-per-problem 2 --reward-clip -2 4 --normalize zscore
fi
# (wait for node 0's data on the shared filesystem before starting the distributed steps)
RUN=(torchrun --nnodes 2 --node-rank "$NODE_RANK" --nproc-per-node 8 --master-addr "$MASTER_ADDR"
     --master-port "${MASTER_PORT:-29500}" -m megatron_o1p)
"${RUN[@]}" ref-logprobs --load "$WORK/ref_mcore" --data "$WORK/data/train.parquet" \
    --tensor-model-parallel-size 8 --pipeline-model-parallel-size 2 --seq-length 4096 --bf16
"${RUN[@]}" train --loss o1-pruner --load "$WORK/ref_mcore" --data "$WORK/data/train.parquet" \
    --save "$WORK/train" --tensor-model-parallel-size 8 --pipeline-model-parallel-size 2 \
    --sequence-parallel --freeze-layers 48 --micro-batch-size 1 --global-batch-size 32 \
    --seq-length 4096 --lr 2e-6 --lr-decay-style cosine --lr-warmup-fraction 0.1 \
    --train-epochs 1 --bf16 --recompute-activations --save-interval 50
