"""Per-sample rewards for length-pruning fine-tuning: O1-Pruner's R_LH and five alternatives.

The O1-Pruner reward (Luo et al., 2025, arXiv 2501.12570, eq. 8-10) scores a sample y of problem
x against K reference samples of the same problem:

    Lbar_ref(x) = mean_i L(y'_i)                                           (eq. 8)
    Abar_ref(x) = mean_i A(x, y'_i)                                        (eq. 9)
    R_LH(x, y)  = Lbar_ref(x) / L(y) - 1 + lambda * (A(x, y) - Abar_ref(x))  (eq. 10)

NOTE: eq. 8 and 9 in the paper are typeset as sums without the 1/K; the text ("calculate the
mean value") and the official code use the mean, and so do we.

`REWARDS` maps a name to a function of one problem's group of samples (their lengths in tokens
and whether each is correct) plus keyword hyper-parameters, returning one reward per sample.
`clip_and_normalize` is the dataset-level post-processing of the official code (clip to [-2, 4],
then z-score over the whole dataset).

Pure: only torch and the standard library; no distributed state. torch is imported where a
tensor is computed (tensor inputs, `clip_and_normalize`), so the build-dataset config, which
checks reward names and parameters against `REWARDS`, stays torch-free for `--help`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Union

from megatron_o1p.config.choices import NORMALIZATIONS

if TYPE_CHECKING:
    import torch

# A scalar, a list/tuple of scalars, or a tensor; lists and tensors work elementwise.
Values = Union[float, int, bool, Sequence[float], "torch.Tensor"]

# Relative size below which a std is rounding residue, not spread (float64 eps is 2.2e-16).
_STD_RTOL = 1e-12

# O1-Pruner lambda: 2 for Marco-o1-7B (paper Table 3, the official recipe), 5 for QwQ-32B.
DEFAULT_LAMBDA = 2.0


def _is_scalar(x) -> bool:
    return isinstance(x, (int, float, bool))


def _is_tensor(x) -> bool:
    """True for a torch tensor, without importing torch (a tensor exists only once it is)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _floats(values, name: str) -> list[float]:
    """A 1-D sequence (list, tuple or tensor) as a list of Python floats."""
    if _is_tensor(values):
        if values.dim() != 1:
            raise ValueError(f"{name} must be 1-D, got shape {tuple(values.shape)}")
        return [float(v) for v in values.tolist()]
    return [float(v) for v in values]


def _group(lengths, correct) -> tuple[list[float], list[float]]:
    """Validate one problem's group: same size, at least one sample, no negative lengths."""
    lens, acc = _floats(lengths, "lengths"), _floats(correct, "correct")
    if len(lens) != len(acc):
        raise ValueError(f"lengths ({len(lens)}) and correct ({len(acc)}) differ in size")
    if not lens:
        raise ValueError("a group needs at least one sample (K >= 1), got none")
    if min(lens) < 0:
        raise ValueError(f"lengths must be >= 0, got {min(lens)}")
    return lens, acc


# --------------------------------------------------------------------------- O1-Pruner (R_LH)


def length_harmonizing_reward(
    length: Values,
    accuracy: Values,
    mean_ref_length: Values,
    mean_ref_accuracy: Values,
    lam: float = DEFAULT_LAMBDA,
) -> Values:
    """The length-harmonizing reward R_LH of O1-Pruner (arXiv 2501.12570, eq. 10).

        R_LH = Lbar_ref / L - 1 + lam * (A - Abar_ref)

    Works on Python scalars (returns a float), on tensors (returns a floating tensor, broadcast
    as torch does) and on lists or tuples (returns a list of floats, elementwise).

    A length of 0 is treated as 1. The only zero-length response is one whose first token was
    EOS, and the paper's L counts response tokens. Counting that EOS token makes the length 1.
    Without the clamp the reward would be infinite and, after the dataset-level clip to
    [-2, 4], every empty answer would get the largest possible weight.

    Args:
        length: L(y), response length in tokens (>= 0).
        accuracy: A(x, y), 1 if the response is correct else 0.
        mean_ref_length: Lbar_ref(x), mean length of the K reference samples (eq. 8).
        mean_ref_accuracy: Abar_ref(x), their mean accuracy in [0, 1] (eq. 9).
        lam: lambda, the accuracy-constraint weight (2 for Marco-o1-7B, 5 for QwQ-32B).

    Returns:
        R_LH, with the type of the inputs (float, list of floats, or floating tensor).

    Raises:
        ValueError: if a length is negative.
    """
    args = (length, accuracy, mean_ref_length, mean_ref_accuracy)
    if all(_is_scalar(a) for a in args):
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        return (
            float(mean_ref_length) / max(float(length), 1.0)
            - 1.0
            + lam * (float(accuracy) - float(mean_ref_accuracy))
        )
    import torch

    tensors = [a for a in args if _is_tensor(a)]
    out_dtype = torch.float64
    if tensors:
        out_dtype = tensors[0].dtype
        for t in tensors[1:]:
            out_dtype = torch.promote_types(out_dtype, t.dtype)
        if not out_dtype.is_floating_point:
            out_dtype = torch.get_default_dtype()
    device = tensors[0].device if tensors else None
    big = [torch.as_tensor(a, dtype=torch.float64, device=device) for a in args]
    lengths, acc, mean_len, mean_acc = big
    if bool((lengths < 0).any()):
        raise ValueError(f"lengths must be >= 0, got {lengths.min().item()}")
    rewards = mean_len / lengths.clamp_min(1.0) - 1.0 + lam * (acc - mean_acc)
    if tensors:
        return rewards.to(out_dtype)
    return rewards.tolist()


def per_problem_stats(lengths, correct) -> tuple[float, float]:
    """Mean length and mean accuracy of one problem's K samples (eq. 8 and 9).

    Args:
        lengths: [K] response lengths in tokens (list, tuple or 1-D tensor).
        correct: [K] 1/True for a correct response, 0/False otherwise.

    Returns:
        (Lbar_ref, Abar_ref): the raw mean length (zero lengths are not clamped here) and the
        fraction of correct samples.

    Raises:
        ValueError: on an empty group, mismatched sizes or a negative length.
    """
    lens, acc = _group(lengths, correct)
    return math.fsum(lens) / len(lens), math.fsum(acc) / len(acc)


def o1_pruner_rewards(lengths, correct, *, lam: float = DEFAULT_LAMBDA) -> list[float]:
    """R_LH for every sample of one problem, the group being its own reference (eq. 8-10).

    This is what the official code does: the K samples of the reference model give Lbar and
    Abar, and each of them is then scored against those means.

    Edge cases: K=1 gives 0 (the sample is its own mean); a group with no correct sample has
    Abar=0, so only the length term varies.

    Args:
        lengths: [K] response lengths in tokens.
        correct: [K] correctness (1/0 or bools).
        lam: lambda of eq. 10.

    Returns:
        [K] rewards.
    """
    mean_len, mean_acc = per_problem_stats(lengths, correct)
    lens, acc = _group(lengths, correct)
    return [length_harmonizing_reward(n, a, mean_len, mean_acc, lam) for n, a in zip(lens, acc)]


# --------------------------------------------------------------------------- alternatives


def kimi_rewards(lengths, correct, *, weight: float = 1.0) -> list[float]:
    """Kimi k1.5 length reward added to correctness (arXiv 2501.12599, sec. 2.3.3).

        lambda_i   = 0.5 - (len_i - min_len) / (max_len - min_len)
        len_reward = lambda_i            if correct
                     min(0, lambda_i)    if incorrect
        r_i        = correct_i + weight * len_reward_i

    min_len and max_len are taken over the group. When every sample has the same length
    (including K=1) the ratio is undefined and the length reward is 0 for all. The paper adds
    the length reward "with a weighting parameter" it does not publish; 1.0 is our default.

    Args:
        lengths: [K] response lengths in tokens.
        correct: [K] correctness.
        weight: weight of the length reward.

    Returns:
        [K] rewards.
    """
    lens, acc = _group(lengths, correct)
    lo, hi = min(lens), max(lens)
    rewards = []
    for n, a in zip(lens, acc):
        lam = 0.0 if hi == lo else 0.5 - (n - lo) / (hi - lo)
        len_reward = lam if a > 0 else min(0.0, lam)
        rewards.append(a + weight * len_reward)
    return rewards


def l1_rewards(lengths, correct, *, target_length: float, alpha: float = 0.0003) -> list[float]:
    """L1 / LCPO exact-length reward (Aggarwal & Welleck, arXiv 2503.04697, eq. 1).

        r_i = correct_i - alpha * |n_gold - n_i|

    n_gold is the length the prompt asked for ("Think for n_gold tokens"); alpha = 0.0003 is
    the paper's value. There is no default target: it comes from the prompt.

    Args:
        lengths: [K] response lengths in tokens.
        correct: [K] correctness.
        target_length: n_gold, the requested length in tokens.
        alpha: penalty per token of deviation.

    Returns:
        [K] rewards.
    """
    lens, acc = _group(lengths, correct)
    return [a - alpha * abs(target_length - n) for n, a in zip(lens, acc)]


def dapo_overlong_penalty(length: float, max_length: float, cache_length: float) -> float:
    """DAPO soft overlong punishment R_length (Yu et al., arXiv 2503.14476, eq. 13).

        R_length = 0                                  if L <= L_max - L_cache
                   ((L_max - L_cache) - L) / L_cache  if L_max - L_cache < L <= L_max
                   -1                                 if L > L_max

    The penalty falls linearly from 0 to -1 across the cache window.

    Args:
        length: L, response length in tokens.
        max_length: L_max.
        cache_length: L_cache (> 0, <= L_max).

    Returns:
        The penalty, in [-1, 0].
    """
    if not 0 < cache_length <= max_length:
        raise ValueError(
            f"need 0 < cache_length <= max_length, got cache_length={cache_length}, "
            f"max_length={max_length}"
        )
    expected = max_length - cache_length
    if length <= expected:
        return 0.0
    if length <= max_length:
        return (expected - length) / cache_length
    return -1.0


def dapo_overlong_rewards(
    lengths, correct, *, max_length: float = 20480, cache_length: float = 4096
) -> list[float]:
    """DAPO's rule-based reward plus its soft overlong punishment (arXiv 2503.14476, eq. 1, 13).

        r_i = (1 if correct_i else -1) + R_length(L_i)        (R_length: `dapo_overlong_penalty`)

    Defaults are the paper's: 16384 expected tokens plus a 4096-token cache, L_max = 20480.
    Each sample is scored alone, so K=1 and groups with no correct sample need no special case.

    Args:
        lengths: [K] response lengths in tokens.
        correct: [K] correctness.
        max_length: L_max in tokens.
        cache_length: L_cache in tokens.

    Returns:
        [K] rewards, in [-2, 1].
    """
    lens, acc = _group(lengths, correct)
    return [
        (1.0 if a > 0 else -1.0) + dapo_overlong_penalty(n, max_length, cache_length)
        for n, a in zip(lens, acc)
    ]


def shorter_better_rewards(
    lengths, correct, *, alpha: float = 2.0, beta: float = 0.001
) -> list[float]:
    """ShorterBetter reward around the sample optimal length (Yi et al., arXiv 2504.21370).

        L_SOL = min { L_j : correct_j }   if any sample is correct
                mean_j L_j                otherwise
        r_i   = alpha * correct_i - beta * |L_i - L_SOL|

    The paper trains with alpha in {1, 2}; alpha=2, beta=0.001 are our defaults. With no correct
    sample every reward is a pure length penalty around the group mean; with K=1 and a correct
    sample, r = alpha.

    Args:
        lengths: [K] response lengths in tokens.
        correct: [K] correctness.
        alpha: correctness weight.
        beta: penalty per token away from L_SOL.

    Returns:
        [K] rewards.
    """
    lens, acc = _group(lengths, correct)
    correct_lens = [n for n, a in zip(lens, acc) if a > 0]
    sol = min(correct_lens) if correct_lens else math.fsum(lens) / len(lens)
    return [alpha * a - beta * abs(n - sol) for n, a in zip(lens, acc)]


def alp_rewards(lengths, correct, *, beta: float = 1e-4, norm: float = 1.0) -> list[float]:
    """Adaptive length penalty, ALP (Xiang et al., arXiv 2506.05256).

        p_solve = mean_j correct_j                     (the group's solve rate)
        r_i     = correct_i - (beta / norm) * N_i * max(p_solve, 1/K)

    N_i is the response length in tokens. Easy problems (high p_solve) pay most per token; the
    1/K floor keeps a small penalty on problems the group never solved. Some renderings of the
    paper write beta/N with N a normalisation constant and |y| the length; `norm` is that constant
    (1 = the penalty is beta per token). beta=1e-4 is our default, not the paper's. K=1 gives
    max(p, 1) = 1.

    Args:
        lengths: [K] response lengths in tokens.
        correct: [K] correctness.
        beta: global penalty coefficient.
        norm: normalisation constant dividing beta.

    Returns:
        [K] rewards.
    """
    lens, acc = _group(lengths, correct)
    scale = (beta / norm) * max(math.fsum(acc) / len(acc), 1.0 / len(acc))
    return [a - scale * n for n, a in zip(lens, acc)]


# name -> f(lengths, correct, **hyper_params) -> per-sample rewards, for one problem's group.
# Its names are config/choices.REWARDS, in the same order (a test checks it).
REWARDS: dict[str, Callable[..., list[float]]] = {
    "o1-pruner": o1_pruner_rewards,
    "kimi": kimi_rewards,
    "l1": l1_rewards,
    "dapo-overlong": dapo_overlong_rewards,
    "shorter-better": shorter_better_rewards,
    "alp": alp_rewards,
}


# --------------------------------------------------------------------------- dataset level


def clip_and_normalize(
    rewards: Values,
    clip: tuple[float, float] | None = (-2.0, 4.0),
    normalize: str = "zscore",
) -> Values:
    """Clip rewards, then z-score them over the whole dataset, as the official code does.

    The official O1-Pruner code clips R_LH to [-2, 4] and then standardises over every row of
    the dataset: (r - mean) / std with the population std (ddof=0). When all clipped rewards are
    equal, std is 0 and every output is 0 (no sample is better than another).

    Args:
        rewards: [N] rewards over the whole dataset (list, tuple or 1-D tensor).
        clip: (low, high) bounds, or None for no clipping.
        normalize: "zscore" or "none".

    Returns:
        [N] processed rewards: a list of floats for a sequence input, a tensor of the input's
        floating dtype (float32 for integer tensors) for a tensor input.

    Raises:
        ValueError: for an unknown `normalize` or clip bounds with low > high.
    """
    import torch

    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be 'zscore' or 'none', got {normalize!r}")
    is_tensor = _is_tensor(rewards)
    values = torch.as_tensor(rewards, dtype=torch.float64).reshape(-1)
    if clip is not None:
        low, high = clip
        if low > high:
            raise ValueError(f"clip low ({low}) must be <= high ({high})")
        values = values.clamp(low, high)
    if normalize == "zscore" and values.numel() > 0:
        centred = values - values.mean()
        std = centred.pow(2).mean().sqrt()
        # Equal inputs can leave rounding residue in the mean ([0.1] * 3): treat a std at
        # rounding level as 0 rather than amplifying the residue to +-1.
        tiny = _STD_RTOL * max(1.0, values.abs().max().item())
        values = centred / std if std > tiny else torch.zeros_like(values)
    if is_tensor:
        dtype = rewards.dtype if rewards.dtype.is_floating_point else torch.get_default_dtype()
        return values.reshape(rewards.shape).to(dtype)
    return values.tolist()
