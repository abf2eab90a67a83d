"""Parity check: HF transformers vs the megatron model loaded from a converted checkpoint.

    python -m megatron_o1p convert verify --hf-dir H --mcore-dir M                  # one process
    torchrun --nproc-per-node N -m megatron_o1p convert verify --hf-dir H --mcore-dir M \
        --tensor-model-parallel-size T --pipeline-model-parallel-size P

Both models run the same token batch (tokenizer-encoded text plus random ids); the megatron
model is loaded through `models/loading.py` and runs forward-only through
`training/forward_step.forward_only`; the last pipeline stage gathers the vocab-parallel
logits, drops megatron's padded vocab columns, and compares logits and log-probs with HF's.
Exit status 1 above the tolerance. For a mixture of experts the check also counts, from HF's
router, the tokens each expert of each layer receives: a batch that leaves an expert idle
would not test that expert's weights or its routing, so it fails too (raise
--micro-batch-size).

Tested by tests/distributed/test_verify.py (every TP/PP layout, both dtypes) and
tests/e2e/test_convert_cli.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from megatron_o1p.checkpoint.verify_config import VerifyConfig
from megatron_o1p.errors import ConfigError
from megatron_o1p.models.hf_config import ModelArchitecture, read_architecture
from megatron_o1p.models.loading import Checkpoint, initialize_for, load_model, read_checkpoint
from megatron_o1p.training.forward_step import forward_only

_SAMPLE_TEXT = "Solve 12+34. Let me think: 2+4=6, 1+3=4, so the answer is \\boxed{46}."


@dataclass
class VerifyResult:
    max_logit_diff: float
    max_logprob_diff: float
    tolerance: float
    shape: tuple = field(default_factory=tuple)
    fewest_expert_tokens: int | None = None
    """MoE: the fewest tokens HF's router sent to any expert of any layer; None = dense."""

    @property
    def passed(self) -> bool:
        within = self.max_logit_diff <= self.tolerance and self.max_logprob_diff <= self.tolerance
        return within and self.fewest_expert_tokens != 0


def check_same_architecture(hf_dir: Path, checkpoint: Checkpoint) -> ModelArchitecture:
    """Raise ConfigError when the HF config and the checkpoint describe different models."""
    stored = checkpoint.arch
    hf = read_architecture(hf_dir)
    diffs = [
        f"{key}: hf={getattr(hf, key)!r} checkpoint={getattr(stored, key)!r}"
        for key in stored.to_json()
        if key != "torch_dtype" and getattr(hf, key) != getattr(stored, key)
    ]
    if diffs:
        raise ConfigError(
            f"{hf_dir / 'config.json'} does not match checkpoint {checkpoint.path}: "
            f"{'; '.join(diffs)}; pass the HF folder the checkpoint was converted from"
        )
    return stored


def _token_batch(hf_dir: Path, arch: ModelArchitecture, cfg: VerifyConfig) -> torch.Tensor:
    """[micro batch, seq length] int64: row 0 starts with the sample text, the rest random."""
    from transformers import AutoTokenizer

    seq_length = cfg.model.seq_length
    tokenizer = AutoTokenizer.from_pretrained(hf_dir, trust_remote_code=False)
    text_ids = tokenizer(_SAMPLE_TEXT)["input_ids"][:seq_length]
    generator = torch.Generator().manual_seed(cfg.seed)
    shape = (cfg.micro_batch_size, seq_length)
    batch = torch.randint(0, arch.vocab_size, shape, generator=generator)
    batch[0, : len(text_ids)] = torch.tensor(text_ids)
    return batch


def megatron_logits(chunks, tokens: torch.Tensor, state) -> torch.Tensor | None:
    """Full-vocab logits [B, T, padded V] on the last pipeline stage, None elsewhere.

    Runs megatron's own schedule forward-only: one micro-batch of the whole batch, or (the
    interleaved schedule needs micro-batches in multiples of the pipeline size) one row each.
    """
    batch, seq = tokens.shape
    interleaved = len(chunks) > 1
    micro_batch = 1 if interleaved else batch
    if interleaved and (batch // micro_batch) % state.pp_size:
        raise ConfigError(
            f"interleaved pipeline needs a batch ({batch}) that is a multiple of "
            f"the pipeline size ({state.pp_size}); raise --micro-batch-size"
        )
    position_ids = torch.arange(seq, device=tokens.device).unsqueeze(0).expand(micro_batch, seq)
    micro_batches = [
        {"tokens": rows, "position_ids": position_ids} for rows in tokens.split(micro_batch)
    ]
    outputs = forward_only(chunks, state, micro_batches, output="logits")
    if outputs is None:
        return None
    logits = torch.cat(outputs).float()
    if state.tp_size > 1:
        parts = [torch.empty_like(logits) for _ in range(state.tp_size)]
        dist.all_gather(parts, logits.contiguous(), group=state.tp_group)
        logits = torch.cat(parts, dim=-1)
    return logits


def _hf_logits(
    hf_dir: Path, tokens: torch.Tensor, dtype: torch.dtype, arch: ModelArchitecture
) -> tuple[torch.Tensor, int | None]:
    """HF's logits, and for a MoE the fewest tokens its router sent to one expert of a layer."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=dtype, attn_implementation="eager", trust_remote_code=False
    ).to(tokens.device)
    model.eval()
    with torch.no_grad():
        out = model(input_ids=tokens, **({"output_router_logits": True} if arch.is_moe else {}))
    if not arch.is_moe:
        return out.logits.float(), None
    counts = [
        torch.bincount(
            router.topk(arch.moe_router_topk, dim=-1).indices.flatten(),
            minlength=arch.num_experts,
        )
        for router in out.router_logits
    ]
    return out.logits.float(), int(torch.stack(counts).min())


def _max_diffs(cfg: VerifyConfig, state, tokens, logits, arch) -> torch.Tensor:
    """[max |logit diff|, max |log-prob diff|, fewest tokens of an expert (-1: dense)] fp64,
    the same on every rank."""
    diffs = torch.zeros(3, dtype=torch.float64, device=state.device)
    diffs[2] = -1  # the MAX all-reduce keeps the reporter's count (-1 stays -1 for a dense model)
    reporter = state.is_last_stage and state.tp_rank == 0 and state.dp_rank == 0
    if reporter:
        reference, fewest = _hf_logits(cfg.hf_dir, tokens, cfg.model.torch_dtype(), arch)
        # Padded vocab columns (rows of zeros in the embedding/output layer) are not tokens:
        # drop them before the softmax, or they take probability mass HF never gives.
        ours = logits[..., : arch.vocab_size]
        diffs[0] = (ours - reference).abs().max()
        diffs[1] = (torch.log_softmax(ours, -1) - torch.log_softmax(reference, -1)).abs().max()
        if fewest is not None:
            diffs[2] = fewest
    dist.all_reduce(diffs, op=dist.ReduceOp.MAX)
    return diffs


def verify(cfg: VerifyConfig) -> VerifyResult:
    """Run HF and megatron on one batch; every rank returns the same result."""
    checkpoint = read_checkpoint(cfg.mcore_dir)
    arch = check_same_architecture(cfg.hf_dir, checkpoint)  # before any collective
    state = initialize_for(checkpoint, cfg.parallel, seed=cfg.seed)
    chunks = load_model(checkpoint, cfg.model, state)
    tokens = _token_batch(cfg.hf_dir, arch, cfg).to(state.device)
    logits = megatron_logits(chunks, tokens, state)
    diffs = _max_diffs(cfg, state, tokens, logits, arch)
    fewest = None if diffs[2] < 0 else int(diffs[2])
    return VerifyResult(
        float(diffs[0]), float(diffs[1]), cfg.tolerance, tuple(tokens.shape), fewest
    )
