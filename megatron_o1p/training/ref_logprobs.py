"""`o1p ref-logprobs`: the reference model's log-probs, computed once, stored in the dataset.

    python -m megatron_o1p ref-logprobs --load M --data D [--rollouts R]          # one process
    torchrun --nproc-per-node N -m megatron_o1p ref-logprobs --load M --data D \
        [--tensor-model-parallel-size T --pipeline-model-parallel-size P] [--rollouts R]

The official code keeps a frozen copy of the model and runs it every step; here the initial
checkpoint runs forward-only once (megatron's pipeline schedule through
`training/forward_step.forward_only`, data parallel over rows) and the dataset gains
`ref_logprobs` (per response token; NaN past --seq-length, where training cuts the sequence
too) or, for DPO pairs, `ref_chosen_logprob` / `ref_rejected_logprob` (sums). The file is
rewritten atomically (`atomic.write_parquet`), in place unless --out.

With --rollouts (the sampled shards), it reports the step-0 rollout/train mismatch: mean
|ref log-prob - vLLM sampling log-prob| per token, and the fraction of sequences whose mean
exceeds --mismatch-threshold.

Tested by tests/distributed/test_ref_logprobs.py and tests/e2e/test_tokenizer_fingerprint.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch.distributed as dist

from megatron_o1p import atomic
from megatron_o1p.data.fingerprint import check_dataset_tokenizer
from megatron_o1p.errors import DataError
from megatron_o1p.models.loading import initialize_for, load_model, read_checkpoint
from megatron_o1p.ops.logprobs import HEAD_IMPLEMENTATION
from megatron_o1p.training import data as train_data
from megatron_o1p.training import packing
from megatron_o1p.training.forward_step import forward_only
from megatron_o1p.training.output_layout import batch_first_output_layer
from megatron_o1p.training.ref_logprobs_config import RefLogprobsConfig

_ID_COLUMNS = ("prompt_ids", "response_ids", "chosen_ids", "rejected_ids")


def _read(path: Path):
    """(the dataset table, whether it holds DPO pairs); DataError for a file that is not one."""
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise DataError("not found; build it with `o1p build-dataset`", path=str(path))
    table = pq.read_table(path)
    if table.num_rows == 0:
        raise DataError("has no rows", path=str(path))
    if "prompt_ids" not in table.column_names:
        raise DataError(
            "missing column prompt_ids; rebuild it with `o1p build-dataset`", path=str(path)
        )
    pairs = "chosen_ids" in table.column_names
    needed = ("chosen_ids", "rejected_ids") if pairs else ("response_ids",)
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise DataError(
            f"missing column(s) {missing}; rebuild it with `o1p build-dataset`", path=str(path)
        )
    return table, pairs


def _sequences(table, pairs: bool, seq_length: int) -> list[list[train_data.Sequence]]:
    """Per row, its sequence(s) as training cuts them: (chosen, rejected) or (response,)."""
    present = [c for c in _ID_COLUMNS if c in table.column_names]
    rows = table.select(present).to_pylist()
    keys = ("chosen_ids", "rejected_ids") if pairs else ("response_ids",)
    return [
        [train_data.make_sequence(row["prompt_ids"], row[key], seq_length) for key in keys]
        for row in rows
    ]


def _rank_logprobs(cfg: RefLogprobsConfig, chunks, state, examples, vocab_size: int) -> dict:
    """{row: [response log-probs of each of its sequences]} for this data-parallel rank's
    rows; filled on the last pipeline stage only (empty elsewhere)."""
    mine = list(range(state.dp_rank, len(examples), state.dp_size))
    per_row: dict[int, list] = {}
    for group, batch in _micro_batches(cfg, state, examples, mine):
        out = forward_only(
            chunks,
            state,
            [batch],
            output="logprobs",
            vocab_size=vocab_size,
            logprob_impl=cfg.logprob_impl,
        )
        if out is None:
            continue
        logprobs, mask = out[0].cpu(), batch["loss_mask"]
        if packing.PACKED_KEY in batch:  # one row per sequence again
            index = batch[packing.PACKED_KEY]
            logprobs = packing.unpack_segments(logprobs, index)
            mask = packing.unpack_segments(mask, index)
        # the sequences are in `packing.sequences_of` order: every row's first, then second
        owners = [r for k in range(len(examples[group[0]])) for r in group]
        for i, row in enumerate(owners):
            per_row.setdefault(row, []).append(logprobs[i][mask[i] > 0].tolist())
    return per_row


def _micro_batches(cfg: RefLogprobsConfig, state, examples, mine: list[int]):
    """(rows, micro-batch) of this rank's rows: packed (as training packs them) or padded
    groups of --micro-batch-size rows."""
    pad_multiple, fixed = train_data.padding_rule(
        state.tp_size, state.pp_size > 1, cfg.model.seq_length
    )
    if cfg.model.pack_sequences:
        rows = [examples[r] for r in mine]
        capacity = train_data.pack_capacity(
            cfg.model.seq_length, cfg.micro_batch_size, len(rows[0]) if rows else 1
        )
        fixed = capacity if state.pp_size > 1 else None
        for members in packing.bins_of(rows, capacity):
            group = [mine[i] for i in members]
            yield group, packing.collate_rows([rows[i] for i in members], pad_multiple, fixed)
        return
    for start in range(0, len(mine), cfg.micro_batch_size):
        group = mine[start : start + cfg.micro_batch_size]
        seqs = packing.sequences_of([examples[r] for r in group])
        yield group, train_data.collate_padded(seqs, pad_multiple, fixed)


def _with_ref_columns(table, pairs: bool, merged: dict):
    """The table with its reference columns (replacing an older `ref_logprobs`)."""
    import pyarrow as pa

    rows = range(table.num_rows)
    if pairs:
        for name, side in (("ref_chosen_logprob", 0), ("ref_rejected_logprob", 1)):
            sums = [float(sum(merged[r][side])) for r in rows]
            table = table.append_column(name, pa.array(sums, pa.float64()))
        return table
    responses = table.column("response_ids").to_pylist()
    # NaN past the cut: training never sees those tokens either.
    column = [merged[r][0] + [math.nan] * (len(responses[r]) - len(merged[r][0])) for r in rows]
    if "ref_logprobs" in table.column_names:
        table = table.drop_columns(["ref_logprobs"])
    return table.append_column("ref_logprobs", pa.array(column, pa.list_(pa.float32())))


def compute_ref_logprobs(cfg: RefLogprobsConfig) -> dict:
    """Run the stage; returns a summary (rows, mismatch figures) on every rank."""
    checkpoint = read_checkpoint(cfg.model.load)  # preflight, before any collective
    table, pairs = _read(cfg.data)
    check_dataset_tokenizer(cfg.data, cfg.model.load)
    examples = _sequences(table, pairs, cfg.model.seq_length)
    state = initialize_for(checkpoint, cfg.parallel)
    chunks = load_model(checkpoint, cfg.model, state)
    batch_first_output_layer(chunks, fused_head=cfg.logprob_impl == HEAD_IMPLEMENTATION)
    per_row = _rank_logprobs(cfg, chunks, state, examples, checkpoint.arch.vocab_size)

    gathered = [None] * dist.get_world_size()
    reporter = state.is_last_stage and state.tp_rank == 0
    dist.all_gather_object(gathered, per_row if reporter else {})
    summary = {"rows": len(examples)}
    if dist.get_rank() == 0:
        merged = {row: v for part in gathered for row, v in part.items()}
        table = _with_ref_columns(table, pairs, merged)
        if cfg.rollouts is not None and not pairs:
            summary.update(_mismatch(table, cfg.rollouts, cfg.mismatch_threshold))
        atomic.write_parquet(cfg.destination, table)
        summary["out"] = str(cfg.destination)
    box = [summary]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _mismatch(table, rollouts: Path, threshold: float) -> dict:
    """Mean |ref - sampler| log-prob per token over rows matched to their rollout sample."""
    import pyarrow.parquet as pq

    rollouts = Path(rollouts)
    shards = sorted(rollouts.glob("part-*.parquet")) if rollouts.is_dir() else [rollouts]
    if not shards:
        raise DataError(
            "no part-*.parquet shards; pass the `o1p sample` output folder", path=str(rollouts)
        )
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
    return {
        "matched_rows": matched,
        "mismatch_mean_abs": sum(diffs) / max(len(diffs), 1),
        "mismatch_frac_above": flagged / max(matched, 1),
    }
