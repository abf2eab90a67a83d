"""Parity check: HF transformers vs the megatron model loaded from a converted checkpoint.

    torchrun --nproc-per-node N -m megatron_o1p convert verify --hf-dir H --mcore-dir M \
        --tensor-model-parallel-size T --pipeline-model-parallel-size P

Both models run the same token batch (tokenizer-encoded text plus random ids); the last
pipeline stage gathers the vocab-parallel logits, drops megatron's padded vocab columns, and
compares logits and log-probs with HF's. Exit status 1 above the tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from megatron_o1p.checkpoint import dist as dist_ckpt
from megatron_o1p.errors import ConfigError
from megatron_o1p.models.hf_config import ModelArchitecture, read_architecture

DEFAULT_TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 1.5e-1}
_SAMPLE_TEXT = "Solve 12+34. Let me think: 2+4=6, 1+3=4, so the answer is \\boxed{46}."


@dataclass
class VerifyConfig:
    hf_dir: Path
    mcore_dir: Path
    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    virtual_pipeline_model_parallel_size: int | None = None
    sequence_parallel: bool = False
    spec: str = "auto"
    params_dtype: torch.dtype = torch.float32
    batch_size: int = 2
    seq_length: int = 64
    seed: int = 1234
    tolerance: float | None = None
    """Max allowed |diff| of logits and log-probs; None = 1e-4 in fp32, 0.15 in bf16."""


@dataclass
class VerifyResult:
    max_logit_diff: float
    max_logprob_diff: float
    tolerance: float
    shape: tuple = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return self.max_logit_diff <= self.tolerance and self.max_logprob_diff <= self.tolerance


def check_same_architecture(hf_dir: Path, mcore_dir: Path) -> ModelArchitecture:
    """Raise ConfigError when the HF config and the checkpoint describe different models."""
    meta = dist_ckpt.read_checkpoint_meta(mcore_dir)
    stored = ModelArchitecture.from_json(meta["architecture"])
    hf = read_architecture(hf_dir)
    diffs = [
        f"{key}: hf={getattr(hf, key)!r} checkpoint={getattr(stored, key)!r}"
        for key in stored.to_json()
        if key != "torch_dtype" and getattr(hf, key) != getattr(stored, key)
    ]
    if diffs:
        raise ConfigError(
            f"{hf_dir / 'config.json'} does not match checkpoint {mcore_dir}: {'; '.join(diffs)}; "
            "pass the HF folder the checkpoint was converted from"
        )
    return stored


def _token_batch(hf_dir: Path, arch: ModelArchitecture, cfg: VerifyConfig) -> torch.Tensor:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir, trust_remote_code=False)
    text_ids = tokenizer(_SAMPLE_TEXT)["input_ids"][: cfg.seq_length]
    generator = torch.Generator().manual_seed(cfg.seed)
    batch = torch.randint(0, arch.vocab_size, (cfg.batch_size, cfg.seq_length), generator=generator)
    batch[0, : len(text_ids)] = torch.tensor(text_ids)
    return batch


def megatron_logits(chunks, tokens: torch.Tensor, state) -> torch.Tensor | None:
    """Full-vocab logits [B, T, padded V] on the last pipeline stage, None elsewhere.

    Runs megatron's own schedule forward-only: one micro-batch of the whole batch, or (the
    interleaved schedule needs micro-batches in multiples of the pipeline size) one row each.
    """
    from megatron.core.pipeline_parallel import get_forward_backward_func

    batch, seq = tokens.shape
    interleaved = len(chunks) > 1
    micro_batch = 1 if interleaved else batch
    num_micro_batches = batch // micro_batch
    if interleaved and num_micro_batches % state.pp_size:
        raise ConfigError(
            f"interleaved pipeline needs a batch ({batch}) that is a multiple of "
            f"the pipeline size ({state.pp_size}); raise --micro-batch-size"
        )
    position_ids = torch.arange(seq, device=tokens.device).unsqueeze(0).expand(micro_batch, seq)

    def forward_step(data_iterator, model):
        rows = next(data_iterator)
        output = model(rows, position_ids, None)  # [b, T, V/TP] when no labels are given
        return output, lambda out: (out.sum() * 0, {"logits": out.detach()})

    def micro_batches():
        return iter(tokens.split(micro_batch))

    outputs = get_forward_backward_func()(
        forward_step_func=forward_step,
        data_iterator=[micro_batches() for _ in chunks] if interleaved else micro_batches(),
        model=chunks if interleaved else chunks[0],
        num_microbatches=num_micro_batches,
        seq_length=seq,
        micro_batch_size=micro_batch,
        forward_only=True,
    )
    if not state.is_last_stage:
        return None
    logits = torch.cat([out["logits"] for out in outputs]).float()
    if state.tp_size > 1:
        parts = [torch.empty_like(logits) for _ in range(state.tp_size)]
        dist.all_gather(parts, logits.contiguous(), group=state.tp_group)
        logits = torch.cat(parts, dim=-1)
    return logits


def _hf_logits(hf_dir: Path, tokens: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=dtype, attn_implementation="eager", trust_remote_code=False
    ).to(tokens.device)
    model.eval()
    with torch.no_grad():
        return model(input_ids=tokens).logits.float()


def verify(cfg: VerifyConfig) -> VerifyResult:
    """Run HF and megatron on one batch; every rank returns the same result."""
    from megatron_o1p.distributed.initialize import ParallelConfig, initialize
    from megatron_o1p.models.builder import ModelOptions, build_gpt_chunks
    from megatron_o1p.models.specs import resolve_spec_name

    arch = check_same_architecture(Path(cfg.hf_dir), Path(cfg.mcore_dir))  # before any collective
    meta = dist_ckpt.read_checkpoint_meta(cfg.mcore_dir)
    state = initialize(
        ParallelConfig(
            tensor_model_parallel_size=cfg.tensor_model_parallel_size,
            pipeline_model_parallel_size=cfg.pipeline_model_parallel_size,
            virtual_pipeline_model_parallel_size=cfg.virtual_pipeline_model_parallel_size,
            sequence_parallel=cfg.sequence_parallel,
        ),
        seed=cfg.seed,
    )
    options = ModelOptions(
        spec=resolve_spec_name(cfg.spec),
        padded_vocab_size=meta["padded_vocab_size"],
        params_dtype=cfg.params_dtype,
        seq_length=cfg.seq_length,
    )
    chunks = build_gpt_chunks(arch, state, options)
    dist_ckpt.load_into_model(chunks, cfg.mcore_dir)
    for chunk in chunks:
        chunk.eval()
    tokens = _token_batch(Path(cfg.hf_dir), arch, cfg).to(state.device)
    with torch.no_grad():
        logits = megatron_logits(chunks, tokens, state)

    diffs = torch.zeros(2, dtype=torch.float64, device=state.device)
    reporter = state.is_last_stage and state.tp_rank == 0 and state.dp_rank == 0
    if reporter:
        reference = _hf_logits(Path(cfg.hf_dir), tokens, cfg.params_dtype)
        # Padded vocab columns (rows of zeros in the embedding/output layer) are not tokens:
        # drop them before the softmax, or they take probability mass HF never gives.
        ours = logits[..., : arch.vocab_size]
        diffs[0] = (ours - reference).abs().max()
        diffs[1] = (torch.log_softmax(ours, -1) - torch.log_softmax(reference, -1)).abs().max()
    dist.all_reduce(diffs, op=dist.ReduceOp.MAX)
    tolerance = (
        cfg.tolerance
        if cfg.tolerance is not None
        else DEFAULT_TOLERANCE.get(cfg.params_dtype, 1.5e-1)
    )
    return VerifyResult(float(diffs[0]), float(diffs[1]), tolerance, tuple(tokens.shape))
