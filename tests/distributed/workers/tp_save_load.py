"""Worker for tests/distributed/test_tp_checkpoint.py.

    torchrun --nproc-per-node 2 tp_save_load.py save HF_DIR WORK   # TP=2: logits + checkpoint
    python tp_save_load.py load HF_DIR WORK                        # TP=1: compare

The TP=2 model and a TP=1 model built from the same seed must give the same logits (megatron
builds the full master weight on the CPU and splits it); a differently seeded TP=1 model that
loads the TP=2 checkpoint must give them too.
"""

import shutil
import sys
from pathlib import Path

import torch

from megatron_o1p.checkpoint.reader import load_into_model
from megatron_o1p.checkpoint.saving import save_model
from megatron_o1p.checkpoint.verify import megatron_logits
from megatron_o1p.distributed.initialize import ParallelConfig, initialize, shutdown
from megatron_o1p.models.builder import ModelOptions, build_gpt_chunks
from megatron_o1p.models.hf_config import read_architecture

SEED = 7


def build(arch, state, seed):
    from megatron.core import tensor_parallel

    torch.manual_seed(seed)
    tensor_parallel.model_parallel_cuda_manual_seed(seed)
    chunks = build_gpt_chunks(arch, state, ModelOptions(spec="local", seq_length=32))
    for chunk in chunks:
        chunk.eval()
    return chunks


def logits_of(chunks, state, arch):
    tokens = torch.randint(0, arch.vocab_size, (2, 32), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return megatron_logits(chunks, tokens, state)


def main():
    phase, hf_dir, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    arch = read_architecture(hf_dir)
    if phase == "save":
        state = initialize(ParallelConfig(tensor_model_parallel_size=2))
        chunks = build(arch, state, SEED)
        logits = logits_of(chunks, state, arch)
        save_model(
            chunks,
            work / "ckpt",
            iteration=5,
            meta={
                "spec": "local",
                "architecture": arch.to_json(),
                "padded_vocab_size": arch.padded_vocab_size(),
                "dtype": "float32",
            },
        )
        if state.rank == 0:
            torch.save(logits, work / "logits_tp2.pt")
            shutil.copytree(
                hf_dir, work / "ckpt" / "hf", ignore=shutil.ignore_patterns("*.safetensors")
            )
    else:
        state = initialize(ParallelConfig())
        reference = torch.load(work / "logits_tp2.pt", weights_only=True)
        fresh = logits_of(build(arch, state, SEED), state, arch)
        other = build(arch, state, SEED + 1)
        before = logits_of(other, state, arch)
        load_into_model(other, work / "ckpt")
        after = logits_of(other, state, arch)
        print(
            f"tp1_vs_tp2={(fresh - reference).abs().max().item():.3e} "
            f"before_load={(before - reference).abs().max().item():.3e} "
            f"after_load={(after - reference).abs().max().item():.3e}",
            flush=True,
        )
    shutdown()


if __name__ == "__main__":
    main()
