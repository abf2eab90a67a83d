"""`fused-head` log-probs (ops/logprobs_fused_head.py) at TP 1, against fp64 references.

The reference is `log_softmax(hidden @ weight.T)[..., :V].gather(target)` in fp64, forward and
backward (d/d hidden, d/d weight of sum(w * logp) for random weights w). Tolerances:

- fp32 inputs: log-probs and gradients within 1e-5 of fp64 (fp32 logits, fp32 sums).
- bf16 inputs: the logits are rounded to bf16 as the output layer rounds them, so against the
  fp64 log-softmax of those same bf16 logits the log-probs are within 1e-5 and the gradients
  within 2% of their largest entry (the logits' gradient is bf16, as on the logits path);
  against exact fp64 math (no rounding of the logits) within 0.05 (a few bf16 ulps of a logit).

The online log-sum-exp (`fold_row_stats`) is checked on its own, with -inf columns and rows.
The TP > 1 cases run on gloo ranks in tests/distributed/test_logprobs_fused_head.py.
"""

import pytest
import torch

from megatron_o1p.errors import ConfigError
from megatron_o1p.ops.logprobs import head_token_logprobs, token_logprobs
from megatron_o1p.ops.logprobs_fused_head import (
    _HeadTokenLogprobs,
    default_chunk_cols,
    empty_row_stats,
    fold_row_stats,
)
from megatron_o1p.ops.vocab_shard import VocabShard

B, T, HIDDEN, PADDED = 2, 7, 16, 256


def _inputs(dtype, vocab=250, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, HIDDEN, generator=g).to(dtype)
    weight = (torch.randn(PADDED, HIDDEN, generator=g) * 0.7).to(dtype)
    targets = torch.randint(0, vocab, (B, T), generator=g)
    targets[0, 0], targets[0, 1] = 0, vocab - 1  # the first and the last real column
    weights = torch.randn(B, T, generator=g, dtype=torch.float64)
    return hidden, weight, targets, weights


def _reference(hidden, weight, targets, vocab, weights, logits_dtype=torch.float64):
    """fp64 (logp, d/d hidden, d/d weight); `logits_dtype` rounds the logits first."""
    h = hidden.double().requires_grad_()
    w = weight.double().requires_grad_()
    logits = h @ w.t()
    if logits_dtype != torch.float64:  # round as a model of that dtype does, keep fp64 grads
        logits = logits + ((hidden @ weight.t()).double() - logits).detach()
    logp = torch.log_softmax(logits[..., :vocab], -1).gather(-1, targets[..., None])[..., 0]
    (logp * weights).sum().backward()
    return logp.detach(), h.grad, w.grad


def _fused(hidden, weight, targets, vocab, weights, chunk_cols):
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    logp = head_token_logprobs(h, w, targets, vocab_size=vocab, chunk_cols=chunk_cols)
    (logp.double() * weights).sum().backward()
    return logp, h.grad, w.grad


def _max_err(a, b):
    return (a.double() - b.double()).abs().max().item()


@pytest.mark.parametrize("chunk_cols", [1, 7, 100, None])
@pytest.mark.parametrize("vocab", [250, 256])
def test_fp32_matches_fp64(vocab, chunk_cols):
    hidden, weight, targets, weights = _inputs(torch.float32, vocab)
    logp, d_hidden, d_weight = _fused(hidden, weight, targets, vocab, weights, chunk_cols)
    ref_logp, ref_hidden, ref_weight = _reference(hidden, weight, targets, vocab, weights)
    assert logp.dtype == torch.float32 and logp.shape == (B, T)
    assert d_hidden.dtype == d_weight.dtype == torch.float32
    assert _max_err(logp, ref_logp) < 1e-5
    assert _max_err(d_hidden, ref_hidden) < 1e-5
    assert _max_err(d_weight, ref_weight) < 1e-5
    assert torch.all(d_weight[vocab:] == 0)  # padding rows get no gradient


@pytest.mark.parametrize("chunk_cols", [7, None])
def test_bf16_matches_fp64_of_its_rounded_logits(chunk_cols):
    vocab = 250
    hidden, weight, targets, weights = _inputs(torch.bfloat16, vocab)
    logp, d_hidden, d_weight = _fused(hidden, weight, targets, vocab, weights, chunk_cols)
    ref = _reference(hidden, weight, targets, vocab, weights, logits_dtype=torch.bfloat16)
    assert d_hidden.dtype == d_weight.dtype == torch.bfloat16
    assert _max_err(logp, ref[0]) < 1e-5
    assert _max_err(d_hidden, ref[1]) < 2e-2 * ref[1].abs().max().item()
    assert _max_err(d_weight, ref[2]) < 2e-2 * ref[2].abs().max().item()
    exact = _reference(hidden, weight, targets, vocab, weights)
    assert _max_err(logp, exact[0]) < 0.05


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_same_numbers_as_chunked_on_the_logits(dtype):
    vocab = 250
    hidden, weight, targets, weights = _inputs(dtype, vocab, seed=3)
    logp, d_hidden, d_weight = _fused(hidden, weight, targets, vocab, weights, 50)
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    ref = token_logprobs(h @ w.t(), targets, vocab_size=vocab, impl="chunked")
    (ref.double() * weights).sum().backward()
    tol = 1e-6 if dtype == torch.float32 else 1e-5
    assert _max_err(logp, ref) < tol
    grad_tol = 1e-6 if dtype == torch.float32 else 1e-2
    assert _max_err(d_hidden, h.grad) < grad_tol * max(1.0, h.grad.abs().max().item())
    assert _max_err(d_weight, w.grad) < grad_tol * max(1.0, w.grad.abs().max().item())


def test_gradcheck_fp64():
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(12, 4, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([[0, 5, 9], [9, 2, 7]])
    shard = VocabShard.of_width(12, 10, None)

    def fn(h, w):
        return _HeadTokenLogprobs.apply(h, w, targets, shard, 3)

    assert torch.autograd.gradcheck(fn, (hidden, weight))


def test_tied_embedding_gets_the_head_gradient_too():
    """A tied weight serves the lookup and the head: its gradient is the sum of both."""
    vocab = 250
    g = torch.Generator().manual_seed(2)
    table = torch.randn(PADDED, HIDDEN, generator=g) * 0.7
    tokens = torch.randint(0, vocab, (B, T), generator=g)
    targets = torch.roll(tokens, -1, 1)

    def loss(embedding, fused):
        hidden = torch.tanh(embedding[tokens])  # a stand-in for the transformer
        if fused:
            logp = head_token_logprobs(hidden, embedding, targets, vocab_size=vocab)
        else:
            logits = (hidden.double() @ embedding.double().t())[..., :vocab]
            logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
        return -logp.sum()

    fused, ref = table.clone().requires_grad_(), table.double().requires_grad_()
    loss(fused, True).backward()
    loss(ref, False).backward()
    assert _max_err(fused.grad, ref.grad) < 1e-5
    assert fused.grad[tokens[0, 0]].abs().sum() > 0


def test_only_what_needs_a_gradient_gets_one_and_no_grad_runs():
    hidden, weight, targets, _ = _inputs(torch.float32)
    w = weight.clone().requires_grad_()
    head_token_logprobs(hidden, w, targets, vocab_size=250).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    with torch.no_grad():
        logp = head_token_logprobs(hidden, weight, targets, vocab_size=250)
    assert not logp.requires_grad and torch.all(logp < 0)


def test_fold_row_stats_is_logsumexp():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 40, generator=g, dtype=torch.float64) * 5
    x[1, 10:] = float("-inf")  # -inf inside a row and a whole -inf chunk
    x[2] = float("-inf")  # a row with no mass at all
    stats = empty_row_stats(5, x.device).double()
    for start, end in ((0, 3), (3, 10), (10, 25), (25, 40)):
        stats = fold_row_stats(stats, x[:, start:end])
    lse = stats[:, 0] + stats[:, 1].log()
    expected = torch.logsumexp(x, -1)
    assert torch.allclose(lse[[0, 1, 3, 4]], expected[[0, 1, 3, 4]], atol=1e-12)
    assert stats[2, 0] == float("-inf") and stats[2, 1] == 0


def test_default_chunk_is_about_16m_values_and_at_least_8_chunks():
    assert default_chunk_cols(16384, 151936) == 1024
    assert default_chunk_cols(256, 151936) == 18992
    assert default_chunk_cols(1 << 30, 151936) == 128


def test_token_logprobs_refuses_fused_head():
    with pytest.raises(ConfigError, match="head_token_logprobs"):
        token_logprobs(torch.zeros(1, 2, 8), torch.zeros(1, 2, dtype=torch.long), impl="fused-head")


def test_mixed_dtypes_refused():
    hidden, weight, targets, _ = _inputs(torch.float32)
    with pytest.raises(TypeError, match="bfloat16"):
        head_token_logprobs(hidden, weight.bfloat16(), targets)


def test_the_flag_offers_every_implementation():
    from megatron_o1p.config.choices import LOGPROB_IMPLS
    from megatron_o1p.ops.logprobs import HEAD_IMPLEMENTATION, IMPLEMENTATIONS

    assert set(LOGPROB_IMPLS) == {*IMPLEMENTATIONS, HEAD_IMPLEMENTATION}
