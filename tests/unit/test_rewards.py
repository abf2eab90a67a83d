"""rewards.py against hand-computed values and a direct transcription of O1-Pruner eq. 8-10.

Every expected number below is worked out in the comment next to it.
"""

import math

import pytest
import torch

from megatron_o1p.rewards import (
    REWARDS,
    alp_rewards,
    clip_and_normalize,
    dapo_overlong_penalty,
    dapo_overlong_rewards,
    kimi_rewards,
    l1_rewards,
    length_harmonizing_reward,
    o1_pruner_rewards,
    per_problem_stats,
    shorter_better_rewards,
)


def _paper_r_lh(lengths_ref, acc_ref, length, acc, lam):
    """Eq. 8-10 transcribed literally (with the 1/K the text's "mean value" implies)."""
    k = len(lengths_ref)
    l_bar = sum(lengths_ref[i] for i in range(k)) / k  # eq. 8
    a_bar = sum(acc_ref[i] for i in range(k)) / k  # eq. 9
    return l_bar / length - 1 + lam * (acc - a_bar)  # eq. 10


# ----------------------------------------------------------------------------- R_LH


def test_r_lh_hand_values():
    # Lbar=100, L=50: 100/50 - 1 = 1; lam*(A - Abar) = 2*(1 - 0.5) = 1; total 2.
    assert length_harmonizing_reward(50, 1, 100, 0.5) == pytest.approx(2.0)
    # L=200: 0.5 - 1 = -0.5; 2*(0 - 0.5) = -1; total -1.5.
    assert length_harmonizing_reward(200, 0, 100, 0.5) == pytest.approx(-1.5)
    # L = Lbar and A = Abar: the paper's "initial expected value is zero".
    assert length_harmonizing_reward(100, 0.5, 100, 0.5) == 0.0
    # lam=5 (QwQ): 100/400 - 1 = -0.75; 5*(1 - 0.25) = 3.75; total 3.0.
    assert length_harmonizing_reward(400, 1, 100, 0.25, lam=5.0) == pytest.approx(3.0)


def test_r_lh_matches_paper_transcription():
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        k = int(torch.randint(1, 17, (1,), generator=gen))
        lens = torch.randint(1, 8192, (k,), generator=gen).tolist()
        acc = torch.randint(0, 2, (k,), generator=gen).tolist()
        mean_len, mean_acc = per_problem_stats(lens, acc)
        for lam in (0.0, 2.0, 5.0):
            ours = o1_pruner_rewards(lens, acc, lam=lam)
            paper = [_paper_r_lh(lens, acc, n, a, lam) for n, a in zip(lens, acc)]
            assert ours == pytest.approx(paper, rel=1e-12, abs=1e-12)
            single = length_harmonizing_reward(lens[0], acc[0], mean_len, mean_acc, lam)
            assert single == pytest.approx(paper[0], rel=1e-12, abs=1e-12)


def test_r_lh_zero_length_counts_as_one():
    # L=0 -> 1: 100/1 - 1 = 99; 2*(1 - 1) = 0.
    assert length_harmonizing_reward(0, 1, 100, 1.0) == pytest.approx(99.0)
    assert length_harmonizing_reward(0, 1, 100, 1.0) == length_harmonizing_reward(1, 1, 100, 1.0)
    out = length_harmonizing_reward(torch.tensor([0, 1]), torch.tensor([1, 1]), 100.0, 1.0)
    assert torch.isfinite(out).all() and out[0] == out[1]


def test_r_lh_negative_length_raises():
    with pytest.raises(ValueError, match="length"):
        length_harmonizing_reward(-1, 1, 100, 0.5)
    with pytest.raises(ValueError, match="length"):
        length_harmonizing_reward([10, -1], [1, 1], 100, 0.5)


def test_r_lh_elementwise_on_lists_and_tensors():
    # [50, 200] as above: [2.0, -1.5].
    out_list = length_harmonizing_reward([50, 200], [1, 0], 100, 0.5)
    assert isinstance(out_list, list) and out_list == pytest.approx([2.0, -1.5])
    out = length_harmonizing_reward(
        torch.tensor([50.0, 200.0], dtype=torch.float64), torch.tensor([1, 0]), 100.0, 0.5
    )
    assert out.dtype == torch.float64 and out.tolist() == pytest.approx([2.0, -1.5])
    # Integer tensors give the default float dtype.
    out32 = length_harmonizing_reward(torch.tensor([50, 200]), torch.tensor([1, 0]), 100, 0.5)
    assert out32.dtype == torch.get_default_dtype()
    # Per-problem means broadcast as tensors too: [[L=50], [L=200]] against their own means.
    out2 = length_harmonizing_reward(
        torch.tensor([50.0, 200.0]), torch.tensor([1.0, 0.0]), torch.tensor([100.0, 400.0]), 0.5
    )
    # 100/50 - 1 + 1 = 2; 400/200 - 1 - 1 = 0.
    assert out2.tolist() == pytest.approx([2.0, 0.0])


def test_per_problem_stats():
    # mean(10, 20, 30, 40) = 25; 2 of 4 correct = 0.5.
    assert per_problem_stats([10, 20, 30, 40], [True, False, True, False]) == (25.0, 0.5)
    assert per_problem_stats(torch.tensor([7]), torch.tensor([1])) == (7.0, 1.0)
    with pytest.raises(ValueError, match="at least one"):
        per_problem_stats([], [])
    with pytest.raises(ValueError, match="differ"):
        per_problem_stats([1, 2], [1])


def test_o1_pruner_group_edge_cases():
    # K=1: the sample is its own reference, R = 0.
    assert o1_pruner_rewards([123], [1]) == [0.0]
    # No correct sample: Abar = 0, A = 0; Lbar = 150: [150/100 - 1, 150/200 - 1] = [0.5, -0.25].
    assert o1_pruner_rewards([100, 200], [0, 0]) == pytest.approx([0.5, -0.25])
    # Identical lengths: only the accuracy term, 2 * (A - 0.5) = [1, -1].
    assert o1_pruner_rewards([64, 64], [1, 0]) == pytest.approx([1.0, -1.0])


# ----------------------------------------------------------------------------- Kimi k1.5


def test_kimi_hand_values():
    # min=10, max=30: lambda = 0.5 - (L-10)/20 = [0.5, 0.0, -0.5].
    # correct [1, 0, 1]: len_reward = [0.5, min(0, 0.0)=0, -0.5]; r = A + len_reward.
    assert kimi_rewards([10, 20, 30], [1, 0, 1]) == pytest.approx([1.5, 0.0, 0.5])
    # incorrect and short: lambda = 0.5 but min(0, 0.5) = 0 -> r = 0; incorrect long: -0.5.
    assert kimi_rewards([10, 30], [0, 0]) == pytest.approx([0.0, -0.5])
    # weight 2: [1 + 2*0.5, 0 + 2*(-0.5)] = [2, -1].
    assert kimi_rewards([10, 30], [1, 0], weight=2.0) == pytest.approx([2.0, -1.0])


def test_kimi_identical_lengths_and_k1():
    assert kimi_rewards([50, 50, 50], [1, 0, 1]) == [1.0, 0.0, 1.0]
    assert kimi_rewards([50], [0]) == [0.0]


# ----------------------------------------------------------------------------- L1 / LCPO


def test_l1_hand_values():
    # n_gold=1000, alpha=0.0003: |1000-1000|=0 -> 1; |1000-2000|*3e-4 = 0.3 -> 1-0.3 = 0.7;
    # incorrect at 500: 0 - 0.15.
    out = l1_rewards([1000, 2000, 500], [1, 1, 0], target_length=1000)
    assert out == pytest.approx([1.0, 0.7, -0.15])
    assert l1_rewards([10], [0], target_length=10, alpha=1.0) == [0.0]


# ----------------------------------------------------------------------------- DAPO


def test_dapo_penalty_pieces():
    # L_max=100, L_cache=20: 0 up to 80, linear to -1 at 100, -1 beyond.
    assert dapo_overlong_penalty(80, 100, 20) == 0.0
    assert dapo_overlong_penalty(90, 100, 20) == pytest.approx(-0.5)  # (80 - 90) / 20
    assert dapo_overlong_penalty(100, 100, 20) == pytest.approx(-1.0)  # (80 - 100) / 20
    assert dapo_overlong_penalty(101, 100, 20) == -1.0
    assert dapo_overlong_penalty(0, 100, 20) == 0.0
    with pytest.raises(ValueError):
        dapo_overlong_penalty(10, 100, 0)


def test_dapo_rewards():
    # correct short: 1 + 0; correct in cache (90): 1 - 0.5; wrong overlong: -1 - 1.
    out = dapo_overlong_rewards([50, 90, 120], [1, 1, 0], max_length=100, cache_length=20)
    assert out == pytest.approx([1.0, 0.5, -2.0])
    # Paper defaults: 16384 is the last unpunished length; 18432 is half-way into the cache.
    assert dapo_overlong_rewards([16384, 18432], [1, 1]) == pytest.approx([1.0, 0.5])


# ----------------------------------------------------------------------------- ShorterBetter


def test_shorter_better_hand_values():
    # SOL = shortest correct = 200. alpha=2, beta=0.001:
    # 100 wrong: 0 - 0.1; 200 right: 2 - 0; 400 right: 2 - 0.2; 300 wrong: 0 - 0.1.
    out = shorter_better_rewards([100, 200, 400, 300], [0, 1, 1, 0])
    assert out == pytest.approx([-0.1, 2.0, 1.8, -0.1])


def test_shorter_better_no_correct_uses_mean():
    # SOL = mean(100, 300) = 200: both 0.001 * 100 away.
    assert shorter_better_rewards([100, 300], [0, 0]) == pytest.approx([-0.1, -0.1])
    assert shorter_better_rewards([77], [1]) == [2.0]


# ----------------------------------------------------------------------------- ALP


def test_alp_hand_values():
    # p_solve = 1/2, K=2: max(0.5, 0.5) = 0.5; beta=1e-3: penalty 1e-3 * 0.5 * N.
    # N=1000 right: 1 - 0.5; N=2000 wrong: 0 - 1.0.
    assert alp_rewards([1000, 2000], [1, 0], beta=1e-3) == pytest.approx([0.5, -1.0])
    # norm divides beta: beta/norm = 1e-3 / 2.
    assert alp_rewards([1000, 2000], [1, 0], beta=1e-3, norm=2.0) == pytest.approx([0.75, -0.5])


def test_alp_floor_and_k1():
    # No correct sample of K=4: max(0, 1/4) = 0.25; beta=1e-3, N=400 -> -0.1.
    assert alp_rewards([400] * 4, [0] * 4, beta=1e-3) == pytest.approx([-0.1] * 4)
    # K=1: max(p, 1/1) = 1 whatever p; N=100, beta=1e-3 -> 1 - 0.1.
    assert alp_rewards([100], [1], beta=1e-3) == pytest.approx([0.9])
    assert alp_rewards([100], [0], beta=1e-3) == pytest.approx([-0.1])


# ----------------------------------------------------------------------------- registry


def test_registry_names_and_call_convention():
    assert set(REWARDS) == {"o1-pruner", "kimi", "l1", "dapo-overlong", "shorter-better", "alp"}
    extra = {"l1": {"target_length": 100}}
    for name, fn in REWARDS.items():
        out = fn([10, 0, 30], [True, False, True], **extra.get(name, {}))
        assert len(out) == 3 and all(math.isfinite(r) for r in out), name
        assert fn(torch.tensor([5]), torch.tensor([1]), **extra.get(name, {})), name
        with pytest.raises(ValueError):
            fn([1, 2], [1], **extra.get(name, {}))


# ----------------------------------------------------------------------------- clip + z-score


def test_clip_and_normalize_hand_values():
    # clip [-5, 0, 10] to [-2, 0, 4]; mean 2/3; deviations [-8/3, -2/3, 10/3];
    # population var = (64 + 4 + 100) / 27 = 168/27; std = sqrt(168/27).
    std = math.sqrt(168 / 27)
    expected = [(-8 / 3) / std, (-2 / 3) / std, (10 / 3) / std]
    assert clip_and_normalize([-5, 0, 10]) == pytest.approx(expected)
    assert clip_and_normalize([-5, 0, 10], normalize="none") == [-2.0, 0.0, 4.0]
    assert clip_and_normalize([-5, 0, 10], clip=None, normalize="none") == [-5.0, 0.0, 10.0]


def test_clip_and_normalize_zero_std_gives_zeros():
    assert clip_and_normalize([0.1, 0.1, 0.1]) == [0.0, 0.0, 0.0]
    # Everything clipped to the same bound: std 0 again.
    assert clip_and_normalize([9.0, 50.0]) == [0.0, 0.0]
    assert clip_and_normalize([]) == []


def test_clip_and_normalize_tensor_keeps_dtype_and_stats():
    x = torch.tensor([0.5, -3.0, 1.5, 7.0], dtype=torch.float32)
    out = clip_and_normalize(x)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert out.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert out.double().pow(2).mean().sqrt().item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError):
        clip_and_normalize([1.0], normalize="minmax")
