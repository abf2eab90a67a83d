"""The output layer computes batch-first logits (or none), only at the positions with loss.

Savings on the largest tensor of a training step (the [b, s, V] logits; V = 152k for Qwen):

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

3. No logits at all (`--logprob-impl fused-head`, `fused_head=True`): the output layer returns
   its input instead, the hidden states at the same span, batch-first ([s', b, h] view of a
   contiguous [b, s', h]), after the one collective the layer itself would apply to it
   (`copy_to_tensor_model_parallel_region`: identity forward, TP all-reduce of the hidden
   gradient backward; under sequence parallelism the sequence all-gather, reduce-scatter
   backward). `head_weight(model)` hands the loss the weight the layer was given: its own, or
   megatron's shared embedding weight when embeddings are tied (on a later pipeline stage that
   is the tied copy megatron keeps on the last stage and all-reduces with the embedding's
   gradient in `finalize_model_grads`). The loss computes the log-probs from both
   (`ops.logprobs.head_token_logprobs`); gradients reach the weight (and the embedding) through
   autograd, and megatron DDP's hooks put them in the grad buffers.

Only the instance's `forward` is wrapped: parameters and checkpoint keys are unchanged. The
logits layouts (1, 2) are not applied under sequence parallelism, where the output layer
all-gathers along the sequence; the fused head is.

Tested by tests/distributed/test_pipeline_loss.py, tests/distributed/test_fused_head_model.py
and tests/distributed/test_train.py.
"""

from __future__ import annotations

import torch

from megatron_o1p.errors import SetupError
from megatron_o1p.training.packing import PACKED_KEY, crop_segment_index


def batch_first_output_layer(chunks: list, *, fused_head: bool = False) -> int:
    """Wrap the output layer of each chunk that has one; returns how many now change layout.

    Args:
        chunks: this rank's model chunks (bare or DDP-wrapped).
        fused_head: return the hidden states instead of the logits (`--logprob-impl
            fused-head`); calling again with another value switches the mode.
    """
    wrapped = 0
    for chunk in chunks:
        layer = _output_layer(chunk)
        if layer is None:
            continue
        if not hasattr(layer, "_o1p_mode"):
            layer.forward = _batch_first(layer, layer.forward)
            layer._o1p_positions, layer._o1p_head_weight = None, None
        if fused_head:
            layer._o1p_mode = "hidden"
        else:
            layer._o1p_mode = None if chunk.config.sequence_parallel else "logits"
        wrapped += layer._o1p_mode is not None
    return wrapped


def set_logit_positions(model, positions: slice) -> bool:
    """Have `model`'s next forward compute logits (or return hidden states) at sequence
    `positions` only. False (and nothing set) when this chunk has no wrapped output layer: the
    output then covers every position (not the last pipeline stage, or sequence parallelism)."""
    layer = _output_layer(model)
    if layer is None or getattr(layer, "_o1p_mode", None) is None:
        return False
    layer._o1p_positions = positions
    return True


def head_weight(model):
    """The output weight [V_padded/TP, h] `model`'s last forward gave its fused-head output
    layer (None where this chunk has no output layer: not the last pipeline stage).

    Raises:
        SetupError: the chunk's output layer computes logits (not wrapped with fused_head).
    """
    layer = _output_layer(model)
    if layer is None:
        return None
    if getattr(layer, "_o1p_mode", None) != "hidden" or layer._o1p_head_weight is None:
        raise SetupError(
            "--logprob-impl fused-head: the output layer was not switched to return hidden "
            "states; call batch_first_output_layer(chunks, fused_head=True) after building"
        )
    weight, layer._o1p_head_weight = layer._o1p_head_weight, None
    return weight


def loss_positions(loss_mask: torch.Tensor) -> slice:
    """The smallest span of positions holding every set entry of a [b, T] loss mask."""
    columns = loss_mask.any(0).nonzero()
    if columns.numel() == 0:
        return slice(0, 1)  # no loss anywhere: one position keeps the shapes non-empty
    return slice(int(columns[0]), int(columns[-1]) + 1)


def crop_batch(batch: dict, positions: slice) -> dict:
    """The micro-batch's per-position loss inputs cut to `positions` (per-row ones kept; a
    packed row's `segment_index` re-pointed into the cut)."""
    per_position = ("targets", "loss_mask", "ref_logprobs")
    cropped = {k: (v[:, positions] if k in per_position else v) for k, v in batch.items()}
    if PACKED_KEY in batch:
        length = batch["tokens"].shape[1]
        cropped[PACKED_KEY] = crop_segment_index(batch[PACKED_KEY], positions, length)
    return cropped


def _output_layer(model):
    while hasattr(model, "module"):  # DDP, Float16Module
        model = model.module
    if not getattr(model, "post_process", False):
        return None
    return getattr(model, "output_layer", None)


def _batch_first(layer, forward):
    def batch_first_forward(input_, weight=None, runtime_gather_output=None):
        positions, layer._o1p_positions = layer._o1p_positions, None
        if layer._o1p_mode is None:
            return forward(input_, weight=weight, runtime_gather_output=runtime_gather_output)
        if layer._o1p_mode == "hidden":
            return _hidden_for_head(layer, input_, weight, positions), None
        hidden = input_.transpose(0, 1)  # [b, s, h]: small next to the logits
        if positions is not None:
            hidden = hidden[:, positions]
        logits, bias = forward(
            hidden.contiguous(), weight=weight, runtime_gather_output=runtime_gather_output
        )
        return logits.transpose(0, 1), bias  # [s, b, V] view of a contiguous [b, s, V]

    return batch_first_forward


def _hidden_for_head(layer, input_, weight, positions):
    """[s', b, h] view of the contiguous [b, s', h] hidden states the layer would multiply."""
    from megatron.core import tensor_parallel

    if layer.bias is not None:
        raise SetupError("--logprob-impl fused-head: the output layer has a bias; use chunked")
    layer._o1p_head_weight = layer.weight if weight is None else weight
    if layer.sequence_parallel:  # [s/TP, b, h] -> [s, b, h]; reduce-scatter of the grad
        input_ = tensor_parallel.gather_from_sequence_parallel_region(
            input_, tensor_parallel_output_grad=True, group=layer.tp_group
        )
    elif layer.tp_group.size() > 1:  # identity; all-reduce of the hidden gradient over TP
        input_ = _SumGradOverTP.apply(input_, layer.tp_group)
    hidden = input_.transpose(0, 1)
    if positions is not None:
        hidden = hidden[:, positions]
    return hidden.contiguous().transpose(0, 1)


class _SumGradOverTP(torch.autograd.Function):
    """megatron's `copy_to_tensor_model_parallel_region` (identity forward, all-reduce of the
    gradient over the TP group backward) for a gradient of any layout.

    NOTE: megatron-core 0.16.1 `tensor_parallel.mappings._reduce` all-reduces
    `grad.contiguous()` and returns `grad`: for a non-contiguous gradient (this module's
    batch-first layout hands it a transposed one) the sum lands in a temporary and is silently
    lost. TODO(o1p): use megatron's region once `_reduce` returns the reduced tensor.
    """

    @staticmethod
    def forward(ctx, input_, group):
        ctx.group = group
        return input_.view_as(input_)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad, group=ctx.group)
        return grad, None
