"""`o1p ref-logprobs`: the reference model's log-probs, computed once, stored in the dataset.

    torchrun --nproc-per-node N -m megatron_o1p ref-logprobs --load M --data D \
        [--tensor-model-parallel-size T --pipeline-model-parallel-size P] [--rollouts R]

The official code keeps a frozen copy of the model and runs it every step; here the initial
checkpoint runs forward-only once (megatron's pipeline schedule, data parallel over rows) and
the dataset gains `ref_logprobs` (per response token; NaN past --seq-length, where training
cuts the sequence too) or, for DPO pairs, `ref_chosen_logprob` / `ref_rejected_logprob`
(sums). The file is rewritten atomically (temp name, then rename), in place unless --out.

With --rollouts (the sampled shards), it reports the step-0 rollout/train mismatch: mean
|ref log-prob - vLLM sampling log-prob| per token, and the fraction of sequences whose mean
exceeds --mismatch-threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from megatron_o1p.checkpoint import dist as dist_ckpt
from megatron_o1p.data.fingerprint import check_dataset_tokenizer
from megatron_o1p.errors import DataError
from megatron_o1p.models.hf_config import ModelArchitecture
from megatron_o1p.ops.logprobs import token_logprobs
from megatron_o1p.training import data as train_data
from megatron_o1p.training.output_layout import batch_first_output_layer


@dataclass
class RefLogprobsConfig:
    load: Path
    data: Path
    out: Path | None = None
    """Where to write; None = rewrite --data in place."""
    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    micro_batch_size: int = 4
    seq_length: int = 4096
    bf16: bool = False
    logprob_impl: str = "chunked"
    rollouts: Path | None = None
    mismatch_threshold: float = 0.1
    spec: str = "auto"


def _read(path: Path):
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise DataError("not found; build it with `o1p build-dataset`", path=str(path))
    table = pq.read_table(path)
    if table.num_rows == 0:
        raise DataError("has no rows", path=str(path))
    if "prompt_ids" not in table.column_names:
        raise DataError("missing column prompt_ids; rebuild it with `o1p build-dataset`",
                        path=str(path))  # fmt: skip
    pairs = "chosen_ids" in table.column_names
    needed = ("chosen_ids", "rejected_ids") if pairs else ("response_ids",)
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise DataError(f"missing column(s) {missing}; rebuild it with `o1p build-dataset`",
                        path=str(path))  # fmt: skip
    return table, pairs


def _sequences(table, pairs: bool, seq_length: int) -> list[list[train_data.Sequence]]:
    cols = table.column_names
    rows = table.select([c for c in ("prompt_ids", "response_ids", "chosen_ids", "rejected_ids")
                         if c in cols]).to_pylist()  # fmt: skip
    keys = ("chosen_ids", "rejected_ids") if pairs else ("response_ids",)
    return [[train_data.make_sequence(r["prompt_ids"], r[k], seq_length) for k in keys]
            for r in rows]  # fmt: skip


def _forward_logprobs(chunks, state, batches: list[dict], vocab_size: int, impl: str):
    """Per micro-batch: [rows, T] fp32 log-probs of the targets (last stage), else None."""
    from megatron.core.pipeline_parallel import get_forward_backward_func

    tp_group = state.tp_group if state.tp_size > 1 else None

    def forward_step(data_iterator, model):
        batch = next(data_iterator)
        output = model(batch["tokens"], batch["position_ids"], None)

        def loss_func(logits):
            logprobs = token_logprobs(logits, batch["targets"], tp_group=tp_group,
                                      vocab_size=vocab_size, impl=impl)  # fmt: skip
            return logprobs.sum() * 0, {"logprobs": logprobs}

        return output, loss_func

    outputs = get_forward_backward_func()(
        forward_step_func=forward_step,
        data_iterator=iter(batches) if len(chunks) == 1 else [iter(batches) for _ in chunks],
        model=chunks[0] if len(chunks) == 1 else chunks,
        num_microbatches=len(batches),
        seq_length=batches[0]["tokens"].shape[1],
        micro_batch_size=batches[0]["tokens"].shape[0],
        forward_only=True,
    )
    return [o["logprobs"] for o in outputs] if state.is_last_stage else None


def compute_ref_logprobs(cfg: RefLogprobsConfig) -> dict:
    """Run the stage; returns a summary (rows, mismatch figures) on every rank."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from megatron_o1p.distributed.initialize import ParallelConfig, initialize
    from megatron_o1p.models.builder import ModelOptions, build_gpt_chunks
    from megatron_o1p.models.specs import resolve_spec_name

    meta = dist_ckpt.read_checkpoint_meta(cfg.load)  # preflight, before any collective
    arch = ModelArchitecture.from_json(meta["architecture"])
    table, pairs = _read(cfg.data)
    check_dataset_tokenizer(cfg.data, cfg.load)
    examples = _sequences(table, pairs, cfg.seq_length)
    state = initialize(ParallelConfig(
        tensor_model_parallel_size=cfg.tensor_model_parallel_size,
        pipeline_model_parallel_size=cfg.pipeline_model_parallel_size,
    ))  # fmt: skip
    chunks = build_gpt_chunks(arch, state, ModelOptions(
        spec=resolve_spec_name(cfg.spec), padded_vocab_size=meta["padded_vocab_size"],
        params_dtype=torch.bfloat16 if cfg.bf16 else torch.float32, seq_length=cfg.seq_length,
    ))  # fmt: skip
    dist_ckpt.load_into_model(chunks, cfg.load)
    batch_first_output_layer(chunks)
    for chunk in chunks:
        chunk.eval()

    mine = list(range(state.dp_rank, len(examples), state.dp_size))
    per_row: dict[int, list] = {}
    pad_multiple, fixed = train_data.padding_rule(state.tp_size, state.pp_size > 1,
                                                  cfg.seq_length)  # fmt: skip
    for start in range(0, len(mine), cfg.micro_batch_size):
        group = mine[start : start + cfg.micro_batch_size]
        seqs = [s for r in group for s in examples[r]]
        batch = train_data.collate_padded(seqs, pad_multiple, fixed)
        with torch.no_grad():
            out = _forward_logprobs(chunks, state, [batch], arch.vocab_size, cfg.logprob_impl)
        if out is None:
            continue
        logprobs, mask = out[0].cpu(), batch["loss_mask"]
        owners = [r for r in group for _ in examples[r]]  # the row of each sequence, in order
        for i, row in enumerate(owners):
            per_row.setdefault(row, []).append(logprobs[i][mask[i] > 0].tolist())

    gathered = [None] * dist.get_world_size()
    reporter = state.is_last_stage and state.tp_rank == 0
    dist.all_gather_object(gathered, per_row if reporter else {})
    summary = {"rows": len(examples)}
    if dist.get_rank() == 0:
        merged = {row: v for part in gathered for row, v in part.items()}
        if pairs:
            table = table.append_column(
                "ref_chosen_logprob",
                pa.array([float(sum(merged[r][0])) for r in range(len(examples))], pa.float64()),
            )
            table = table.append_column(
                "ref_rejected_logprob",
                pa.array([float(sum(merged[r][1])) for r in range(len(examples))], pa.float64()),
            )
        else:
            responses = table.column("response_ids").to_pylist()
            column = [merged[r][0] + [math.nan] * (len(responses[r]) - len(merged[r][0]))
                      for r in range(len(examples))]  # fmt: skip
            for name in ("ref_logprobs",):
                if name in table.column_names:
                    table = table.drop_columns([name])
            table = table.append_column("ref_logprobs", pa.array(column, pa.list_(pa.float32())))
            if cfg.rollouts is not None:
                summary.update(_mismatch(table, cfg.rollouts, cfg.mismatch_threshold))
        out = Path(cfg.out or cfg.data)
        tmp = out.with_name(f".{out.name}.tmp")
        pq.write_table(table, tmp)
        tmp.replace(out)
        summary["out"] = str(out)
    box = [summary]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _mismatch(table, rollouts: Path, threshold: float) -> dict:
    """Mean |ref - sampler| log-prob per token over rows matched to their rollout sample."""
    import pyarrow.parquet as pq

    rollouts = Path(rollouts)
    shards = sorted(rollouts.glob("part-*.parquet")) if rollouts.is_dir() else [rollouts]
    if not shards:
        raise DataError("no part-*.parquet shards; pass the `o1p sample` output folder",
                        path=str(rollouts))  # fmt: skip
    columns = ["problem_id", "sample_index", "sampler_logprobs"]
    sampled = [row for shard in shards for row in pq.read_table(shard, columns=columns).to_pylist()]
    by_key = {(str(r["problem_id"]), r["sample_index"]): r["sampler_logprobs"] for r in sampled}
    diffs, flagged, matched = [], 0, 0
    for row in table.select(["problem_id", "sample_index", "ref_logprobs"]).to_pylist():
        sampler = by_key.get((str(row["problem_id"]), row["sample_index"]))
        if not sampler:
            continue
        pairs = [(a, b) for a, b in zip(row["ref_logprobs"], sampler) if not math.isnan(a)]
        if not pairs:
            continue
        seq = [abs(a - b) for a, b in pairs]
        diffs += seq
        matched += 1
        flagged += sum(seq) / len(seq) > threshold
    return {"matched_rows": matched,
            "mismatch_mean_abs": sum(diffs) / max(len(diffs), 1),
            "mismatch_frac_above": flagged / max(matched, 1)}  # fmt: skip
