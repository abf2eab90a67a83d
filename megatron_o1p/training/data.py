"""Training data: scored rows -> padded, length-grouped micro-batches (batch-first).

Columns read from the dataset (one row per sequence; DPO: one row per pair), through its
memory-mapped copy (`training/token_dataset.py`: rows are read when a micro-batch needs them):

    o1-pruner: prompt_ids, response_ids, advantage (normalised R_LH), ref_logprobs
               (log pi_ref of each response token, from `o1p ref-logprobs`)
    sft:       prompt_ids, response_ids
    dpo:       prompt_ids, chosen_ids, rejected_ids, ref_chosen_logprob, ref_rejected_logprob
               (sequence sums, from `o1p ref-logprobs`)

A sequence is prompt + response, cut at `seq_length + 1` tokens (the official code truncated long
chains of thought silently; we cut too, but count them: `data/truncated_frac`). Inputs are
tokens[:-1], targets tokens[1:]; the loss mask covers positions whose target is a response token.

With --pack-sequences (the default) a step's rows are packed instead, whole, into
micro-batches of at most micro_batch_size x seq_length positions (`training/packing.py`):
the step holds the same rows either way, so the loss and gradients are the same.

Order: each epoch visits the rows in a permutation seeded by (seed, epoch); step i takes the
next `global_batch_size` rows (an incomplete last batch is dropped), data-parallel rank r takes
its contiguous share, sorted by length so each micro-batch pads little. The position in the
data is therefore a function of the iteration alone, which is what resume restores.

Tested by tests/unit/training/test_data.py and tests/distributed/test_train.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from megatron_o1p.errors import DataError
from megatron_o1p.training.packing import packed_micro_batches

REQUIRED = {
    "o1-pruner": ("prompt_ids", "response_ids", "advantage", "ref_logprobs"),
    "sft": ("prompt_ids", "response_ids"),
    "dpo": (
        "prompt_ids",
        "chosen_ids",
        "rejected_ids",
        "ref_chosen_logprob",
        "ref_rejected_logprob",
    ),
}
TOKEN_COLUMNS = ("prompt_ids", "response_ids", "chosen_ids", "rejected_ids")
"""The token-id columns; a loss reads those of them in REQUIRED[loss]."""


def missing_columns_error(column_names, loss: str, path) -> DataError | None:
    """The one-line error for a dataset lacking a column `--loss loss` reads (None if none)."""
    missing = [c for c in REQUIRED[loss] if c not in column_names]
    if not missing:
        return None
    fix = (
        "run `o1p ref-logprobs` on it first"
        if any("ref" in c for c in missing)
        else "rebuild it with `o1p build-dataset`"
    )
    return DataError(f"missing column(s) {missing} for --loss {loss}; {fix}", path=str(path))


@dataclass
class Sequence:
    tokens: list[int]
    """prompt + response, truncated to seq_length + 1."""
    prompt_len: int
    ref_logprobs: list[float] | None = None
    """Per response token (aligned to the response), truncated with it."""
    advantage: float = 0.0
    ref_seq_logprob: float = 0.0
    truncated: bool = False


def make_sequence(prompt, response, seq_length: int, **extra) -> Sequence:
    """prompt + response cut at `seq_length + 1` tokens (and `ref_logprobs` with it).

    The columns may be lists or numpy arrays (views into a memory map): only the values the
    cut keeps become Python numbers."""
    keep = seq_length + 1
    tokens = _as_list(prompt[:keep]) + _as_list(response[: max(0, keep - len(prompt))])
    truncated = len(prompt) + len(response) > keep
    seq = Sequence(tokens, len(prompt), truncated=truncated, **extra)
    if seq.ref_logprobs is not None:
        seq.ref_logprobs = _as_list(seq.ref_logprobs[: max(0, len(tokens) - len(prompt))])
    return seq


def _as_list(values) -> list:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def collate(sequences: list[Sequence], pad_to: int, pad_id: int = 0) -> dict:
    """A micro-batch dict (see training/forward_step.py) padded to `pad_to` positions."""
    batch = len(sequences)
    tokens = torch.full((batch, pad_to), pad_id, dtype=torch.long)
    targets = torch.full((batch, pad_to), pad_id, dtype=torch.long)
    loss_mask = torch.zeros(batch, pad_to)
    ref_logprobs = torch.zeros(batch, pad_to)
    for i, seq in enumerate(sequences):
        n = len(seq.tokens) - 1
        tokens[i, :n] = torch.tensor(seq.tokens[:-1])
        targets[i, :n] = torch.tensor(seq.tokens[1:])
        first = max(seq.prompt_len - 1, 0)  # position whose target is the first response token
        loss_mask[i, first:n] = 1
        if seq.ref_logprobs is not None and n > first:
            ref_logprobs[i, first:n] = torch.tensor(seq.ref_logprobs[: n - first])
    return {
        "tokens": tokens,
        "position_ids": torch.arange(pad_to).expand(batch, pad_to).contiguous(),
        "targets": targets,
        "loss_mask": loss_mask,
        "ref_logprobs": ref_logprobs,
        "advantages": torch.tensor([s.advantage for s in sequences], dtype=torch.float32),
        "ref_seq_logprobs": torch.tensor([s.ref_seq_logprob for s in sequences]),
    }


def pack_capacity(seq_length: int, micro_batch_size: int, sequences_per_row: int) -> int:
    """Positions of one packed micro-batch: what a padded one of the same flags holds at most
    (`micro_batch_size` rows of `sequences_per_row` sequences of `seq_length`)."""
    return seq_length * micro_batch_size * sequences_per_row


def padding_rule(tensor_parallel_size: int, pipelined: bool, seq_length: int):
    """(pad multiple, fixed length) of micro-batches, shared by `o1p train` and `o1p
    ref-logprobs`: a micro-batch pads to its longest sequence rounded up to a multiple of
    8 x TP (sequence parallelism splits positions over TP ranks), or, with pipeline
    parallelism (whose p2p needs fixed shapes), always to `seq_length`."""
    return 8 * tensor_parallel_size, (seq_length if pipelined else None)


def collate_padded(sequences: list[Sequence], pad_multiple: int, fixed_length: int | None):
    """`collate` with the padding of `padding_rule`."""
    longest = max(len(s.tokens) - 1 for s in sequences)
    return collate(sequences, fixed_length or -(-longest // pad_multiple) * pad_multiple)


class StepBatches:
    """Which rows each optimizer step uses, on this data-parallel rank.

    `examples` is a `training/token_dataset.TokenDataset` (what `o1p train` passes: rows are
    read when a micro-batch needs them, lengths come from its `row_lengths`), or a plain list of
    per-row sequences (`testing/eager_data.to_sequences`); both give the same batches.
    """

    def __init__(
        self,
        examples,
        global_batch_size: int,
        micro_batch_size: int,
        dp_rank: int,
        dp_size: int,
        seed: int,
    ):
        self.examples, self.seed = examples, seed
        self.global_batch_size, self.micro_batch_size = global_batch_size, micro_batch_size
        self.dp_rank, self.dp_size = dp_rank, dp_size
        self.steps_per_epoch = len(examples) // global_batch_size
        self.row_lengths = getattr(examples, "row_lengths", None)
        """Per row, the length of its longest sequence (tokens, after the cut): the sort key."""
        if self.row_lengths is None:
            self.row_lengths = [max(len(s.tokens) for s in row) for row in examples]

    def global_rows_of_step(self, iteration: int) -> list[int]:
        """Every row of step `iteration`, over all data-parallel ranks."""
        epoch, step = divmod(iteration, self.steps_per_epoch)
        generator = torch.Generator().manual_seed(self.seed * 1000003 + epoch)
        order = torch.randperm(len(self.examples), generator=generator).tolist()
        return order[step * self.global_batch_size : (step + 1) * self.global_batch_size]

    def rows_of_step(self, iteration: int) -> list[int]:
        """This data-parallel rank's rows of step `iteration`."""
        rows = self.global_rows_of_step(iteration)
        share = self.global_batch_size // self.dp_size
        return rows[self.dp_rank * share : (self.dp_rank + 1) * share]

    def micro_batches(
        self,
        iteration: int,
        pad_multiple: int,
        fixed_length: int | None,
        pack_capacity: int | None = None,
    ):
        """The micro-batch dicts of step `iteration` for this rank: padded, shortest first, or
        with `pack_capacity` packed rows of at most that many positions (`training/packing.py`;
        `fixed_length` then pads every packed row to it)."""
        lengths = self.row_lengths
        rows = sorted(self.rows_of_step(iteration), key=lambda r: int(lengths[r]))
        if pack_capacity is not None:
            examples = [self.examples[r] for r in rows]
            return packed_micro_batches(examples, pack_capacity, pad_multiple, fixed_length)
        out = []
        for i in range(0, len(rows), self.micro_batch_size):
            group = [self.examples[r] for r in rows[i : i + self.micro_batch_size]]
            # DPO: chosen rows first, then rejected, as forward_step expects
            seqs = [row[k] for k in range(len(group[0])) for row in group]
            out.append(collate_padded(seqs, pad_multiple, fixed_length))
        return out
