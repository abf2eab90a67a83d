"""The output layer computes batch-first logits, only at the positions that carry loss.

Two savings on the largest tensor of a training step (the [b, s, V] logits; V = 152k for Qwen):

1. No copies. megatron's `GPTModel` (given no labels) returns `logits.transpose(0, 1)
   .contiguous()`: with its sequence-first [s, b, V] output layer that is a full copy of the
   logits in the forward, and in the backward the output layer makes the transposed gradient
   contiguous again (two more copies). Here the output layer multiplies the (small) hidden states
   in batch-first order and returns the transposed *view* of its contiguous [b, s, V] result, so
   megatron's transpose yields a contiguous tensor, `.contiguous()` is a no-op and the gradient
   flows back in the same layout.
2. No logits where no loss is. The loss only reads response positions; the prompt's logits (the
   official code computes them, then masks them out) are a quarter of the output layer's FLOPs
   at a 1:3 prompt:response split. `forward_step` names the span of positions whose loss mask is
   set (`set_logit_positions`), the output layer computes only those, and the loss reads the
   same span of targets and masks: the same numbers, on fewer rows.

Only the instance's `forward` is wrapped: parameters and checkpoint keys are unchanged. Not
applied under sequence parallelism, where the output layer all-gathers along the sequence.

Tested by tests/distributed/test_pipeline_loss.py and tests/distributed/test_train.py.
"""

from __future__ import annotations

import torch


def batch_first_output_layer(chunks: list) -> int:
    """Wrap the output layer of each chunk that has one; returns how many were wrapped."""
    wrapped = 0
    for chunk in chunks:
        layer = _output_layer(chunk)
        if layer is None or chunk.config.sequence_parallel:
            continue
        if not getattr(layer, "_o1p_batch_first", False):
            layer.forward = _batch_first(layer, layer.forward)
            layer._o1p_batch_first, layer._o1p_positions = True, None
        wrapped += 1
    return wrapped


def set_logit_positions(model, positions: slice) -> bool:
    """Have `model`'s next forward compute logits at sequence `positions` only. False (and
    nothing set) when this chunk has no wrapped output layer: the logits then cover every
    position (not the last pipeline stage, or sequence parallelism)."""
    layer = _output_layer(model)
    if layer is None or not getattr(layer, "_o1p_batch_first", False):
        return False
    layer._o1p_positions = positions
    return True


def loss_positions(loss_mask: torch.Tensor) -> slice:
    """The smallest span of positions holding every set entry of a [b, T] loss mask."""
    columns = loss_mask.any(0).nonzero()
    if columns.numel() == 0:
        return slice(0, 1)  # no loss anywhere: one position keeps the shapes non-empty
    return slice(int(columns[0]), int(columns[-1]) + 1)


def crop_batch(batch: dict, positions: slice) -> dict:
    """The micro-batch's per-position loss inputs cut to `positions` (per-row ones kept)."""
    per_position = ("targets", "loss_mask", "ref_logprobs")
    return {k: (v[:, positions] if k in per_position else v) for k, v in batch.items()}


def _output_layer(model):
    while hasattr(model, "module"):  # DDP, Float16Module
        model = model.module
    if not getattr(model, "post_process", False):
        return None
    return getattr(model, "output_layer", None)


def _batch_first(layer, forward):
    def batch_first_forward(input_, weight=None, runtime_gather_output=None):
        positions, layer._o1p_positions = layer._o1p_positions, None
        hidden = input_.transpose(0, 1)  # [b, s, h]: small next to the logits
        if positions is not None:
            hidden = hidden[:, positions]
        logits, bias = forward(
            hidden.contiguous(), weight=weight, runtime_gather_output=runtime_gather_output
        )
        return logits.transpose(0, 1), bias  # [s, b, V] view of a contiguous [b, s, V]

    return batch_first_forward
