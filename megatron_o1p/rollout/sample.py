"""The sample stage: K solutions per problem from the reference model (O1-Pruner sec. 3.2).

    o1p sample --model HF_DIR --problems math.jsonl --preset math --num-samples 16 \\
        --temperature 0.5 --top-p 0.8 --max-tokens 8192 --seed 0 --out rollouts/
    # data parallel over N machines (vLLM TP inside each), one output directory:
    o1p sample ... --tensor-parallel-size 4 --num-shards N --shard-index i --out rollouts/

Writes parquet shards of `records.ROLLOUT_SCHEMA` rows (one per (problem, sample)). The
tokenizer's fingerprint (`data/fingerprint.py`) is recorded in `OUT/config.json` and on every
shard's `prompt_ids` field, and travels through grade and build-dataset to the dataset.

Sharding and resume. Problems are cut, in file order, into chunks of `problems_per_shard`;
chunk c becomes `OUT/part-{c:05d}.parquet`. With `--num-shards N --shard-index i` this
invocation owns the chunks c with c % N == i (round-robin over chunks), so N invocations write
disjoint, distinctly named shards into one directory, and the directory is the same for any N.
Each shard is written to `.tmp` and renamed when complete (`data/shards.py`); a rerun of the
same command skips complete shards and resamples the rest, so after any kill every (problem,
sample) appears exactly once. Every problem's request carries its own seed, derived from
`--seed` and the problem id, so a resampled shard has the same tokens as an uninterrupted run
(on the same hardware and vLLM build) and results do not depend on batching or N.

The engine is started once and handed one chunk at a time (`problems_per_shard * K`
sequences), so pick `problems_per_shard * K` at least vLLM's `max_num_seqs` (256 on GPU) to
keep it full. `OUT/config.json` records the settings; a rerun with different settings is
refused unless `--overwrite`.

`sample_problems` is the one path from problems to sampled rows: prompts (`data/prompts.py`),
one seeded vLLM request of K samples per problem, rows in (problem, sample index) order. This
stage calls it once per shard; `o1p evaluate` once per benchmark (without log-probs).

Differs from the official O1-Pruner code: it samples with vLLM 0.6.3 in a separate script
with no resume; its log-probs are not stored.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from megatron_o1p.config.engine import EngineConfig
from megatron_o1p.config.flags import Flags, flag, require, shared
from megatron_o1p.config.sampling import SamplingConfig
from megatron_o1p.data.fingerprint import FINGERPRINT_KEY, tag_table, tokenizer_fingerprint
from megatron_o1p.data.problems import Problem, ProblemSource, load_problems
from megatron_o1p.data.prompts import load_tokenizer, prompt_ids
from megatron_o1p.data.shards import check_config, complete_shards, write_shard
from megatron_o1p.errors import DataError
from megatron_o1p.rollout.vllm_engine import LOGPROBS_MODE, check_servable

# Per-request seeds stay below 2**31 (vLLM adds the sample index; C generators take int64).
_SEED_MOD = 2**31 - 2**16


@dataclass
class SampleConfig(Flags):
    """Settings of the sample stage (flags map one-to-one onto fields)."""

    source: ProblemSource
    """Problems file and column mapping."""
    engine: EngineConfig
    """vLLM engine settings (model folder, TP, dtype, KV cache)."""
    out: Path = shared("out", "output directory of rollout shards")
    """Output directory: config.json and part-XXXXX.parquet shards."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    """K, temperature, top-p, token limit, seed, prompt."""
    problems_per_shard: int = flag(64, "problems per output shard (the unit of resume)")
    """Problems per shard; pick problems_per_shard * K >= vLLM's max_num_seqs."""
    num_shards: int = flag(1, "N, data-parallel invocations sharing --out")
    """N invocations; this one owns the chunks c with c % N == shard_index."""
    shard_index: int = flag(0, "this invocation's index in [0, N)")
    """In [0, num_shards)."""
    overwrite: bool = shared(
        "overwrite", "replace an output written with another config", default=False
    )
    """Replace an output directory written with a different config."""
    progress: bool = shared("no_progress", "no tqdm bar", default=True)
    """tqdm bar on stderr (problems, with generated tokens/s)."""

    def __post_init__(self):
        self.out = Path(self.out)
        require(
            self.problems_per_shard >= 1,
            f"--problems-per-shard must be >= 1, got {self.problems_per_shard}",
        )
        require(self.num_shards >= 1, f"--num-shards must be >= 1, got {self.num_shards}")
        require(
            0 <= self.shard_index < self.num_shards,
            f"--shard-index must be in [0, {self.num_shards}), got {self.shard_index}",
        )

    def recorded(self, num_problems: int, tokenizer_sha256: str | None = None) -> dict:
        """What determines the output directory (not N, i, or where the engine runs); the
        tokenizer fingerprint travels on to the dataset (`data/fingerprint.py`)."""
        problems = asdict(self.source)
        if Path(self.source.path).exists():  # local files: the same file from any cwd
            problems["path"] = str(Path(self.source.path).resolve())
        s = self.sampling
        return {
            "stage": "sample",
            "model": str(Path(self.engine.model).resolve()),
            "dtype": self.engine.dtype,
            "problems": problems,
            "num_problems": num_problems,
            "num_samples": s.num_samples,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "seed": s.seed,
            "speed_prompt": s.speed_prompt,
            "system_prompt": s.system_prompt,
            "enable_thinking": s.enable_thinking,
            "problems_per_shard": self.problems_per_shard,
            "logprobs_mode": LOGPROBS_MODE,
            FINGERPRINT_KEY: tokenizer_sha256,
        }


@dataclass
class SampleSummary:
    """What one invocation did."""

    shards_total: int = 0
    """Shards this invocation owns."""
    shards_skipped: int = 0
    """Owned shards already complete (resume)."""
    shards_written: int = 0
    rows_written: int = 0
    tokens: int = 0
    """Response tokens generated."""
    seconds: float = 0.0


def problem_seed(seed: int, problem_id: str) -> int:
    """The request seed of one problem: stable across runs, batching and sharding."""
    digest = hashlib.sha256(f"{seed}:{problem_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % _SEED_MOD


def owned_chunks(num_problems: int, cfg: SampleConfig) -> list[tuple[int, range]]:
    """(shard index, problem index range) for the chunks this invocation owns."""
    size = cfg.problems_per_shard
    num_chunks = (num_problems + size - 1) // size
    return [
        (c, range(c * size, min((c + 1) * size, num_problems)))
        for c in range(cfg.shard_index, num_chunks, cfg.num_shards)
    ]


def run_sample(cfg: SampleConfig) -> SampleSummary:
    """Sample K responses for every problem this invocation owns that has no complete shard.

    Args:
        cfg: stage settings.

    Returns:
        Counts and timing.

    Raises:
        DataError: bad problems file, or a prompt longer than the model's context.
        ConfigError: the output directory holds a different config (without --overwrite).
        SetupError: no vLLM, no tokenizer with a chat template, or a model vLLM cannot serve
            on this machine.
    """
    start = time.monotonic()
    problems = load_problems(cfg.source)
    tokenizer = load_tokenizer(cfg.engine.model, enable_thinking=cfg.sampling.enable_thinking)
    check_servable(cfg.engine.model)  # before OUT/ is written or vLLM is imported
    fingerprint = tokenizer_fingerprint(tokenizer)
    check_config(cfg.out, cfg.recorded(len(problems), fingerprint), overwrite=cfg.overwrite)
    chunks = owned_chunks(len(problems), cfg)
    done = complete_shards(cfg.out)
    pending = [(c, idx) for c, idx in chunks if c not in done]
    summary = SampleSummary(shards_total=len(chunks), shards_skipped=len(chunks) - len(pending))
    if pending:
        _sample_shards(cfg, problems, pending, tokenizer, fingerprint, summary)
    summary.seconds = time.monotonic() - start
    return summary


def _sample_shards(
    cfg: SampleConfig,
    problems: list[Problem],
    pending: list[tuple[int, range]],
    tokenizer,
    fingerprint: str,
    summary: SampleSummary,
) -> None:
    """Sample and write each pending shard, with one engine for all of them."""
    from megatron_o1p.data.records import ROLLOUT_SCHEMA, to_table
    from megatron_o1p.rollout.vllm_engine import build_engine

    llm = build_engine(cfg.engine)
    bar = _progress(cfg, sum(len(idx) for _, idx in pending))
    gen_start = time.monotonic()
    try:
        for shard, idx in pending:
            chunk = [problems[i] for i in idx]
            rows, _ = sample_problems(
                llm,
                tokenizer,
                chunk,
                cfg.sampling,
                source_path=cfg.source.path,
                first_row=idx.start,
            )
            write_shard(cfg.out, shard, tag_table(to_table(rows, ROLLOUT_SCHEMA), fingerprint))
            summary.shards_written += 1
            summary.rows_written += len(rows)
            summary.tokens += sum(r.length for r in rows)
            bar.update(len(chunk))
            elapsed = max(time.monotonic() - gen_start, 1e-9)
            bar.set_postfix_str(f"{summary.tokens / elapsed:.0f} tok/s")
    finally:
        bar.close()


# --------------------------------------------------------------------------- problems -> rows


def sample_problems(
    llm,
    tokenizer,
    problems: list[Problem],
    sampling: SamplingConfig,
    *,
    source_path: str,
    first_row: int = 0,
    logprobs: bool = True,
    use_tqdm=False,
):
    """K sampled responses for each problem, as rollout rows: the one generation path of
    `o1p sample` (per shard) and `o1p evaluate` (per benchmark).

    Args:
        llm: a `vllm.LLM` (`rollout/vllm_engine.build_engine`).
        tokenizer: the model's HF tokenizer (chat template).
        problems: the problems, in output order.
        sampling: K, temperature, top-p, token limit, base seed, prompt.
        source_path: the problems file, named in errors.
        first_row: the file row of `problems[0]` (errors name the row).
        logprobs: return the sampled tokens' raw log-probs (`sampler_logprobs`; else None).
        use_tqdm: vLLM's `use_tqdm` (False, or a tqdm factory).

    Returns:
        (rows, seconds): `records.RolloutRow`s in (problem, sample index) order, and the wall
        time of vLLM's `generate` call (prefill and decode of the whole batch).

    Raises:
        DataError: a prompt as long as the model's context.
    """
    from vllm.inputs import TokensPrompt

    from megatron_o1p.rollout.vllm_engine import context_length

    prompts = build_prompts(
        tokenizer, problems, sampling, context_length(llm), path=source_path, first_row=first_row
    )
    params = _request_params(problems, sampling, logprobs)
    start = time.monotonic()
    outputs = llm.generate(
        [TokensPrompt(prompt_token_ids=ids) for ids in prompts], params, use_tqdm=use_tqdm
    )
    seconds = time.monotonic() - start
    return _rows(problems, prompts, outputs, sampling.num_samples, logprobs), seconds


def build_prompts(
    tokenizer, problems: list[Problem], sampling: SamplingConfig, max_len: int, *, path, first_row=0
) -> list[list[int]]:
    """[P] chat-prompt token ids per problem; a prompt that fills the context is a DataError."""
    prompts = []
    for row, problem in enumerate(problems, start=first_row):
        ids = prompt_ids(
            tokenizer,
            problem.problem,
            speed=sampling.speed_prompt,
            system_prompt=sampling.system_prompt,
            enable_thinking=sampling.enable_thinking,
        )
        if len(ids) >= max_len:
            raise DataError(
                f"problem {problem.problem_id!r}: the prompt has {len(ids)} tokens, the model "
                f"context is {max_len}; shorten or drop the problem, or raise --max-model-len",
                path=path,
                row=row,
            )
        prompts.append(ids)
    return prompts


def _request_params(problems: list[Problem], sampling: SamplingConfig, logprobs: bool) -> list:
    from megatron_o1p.rollout.vllm_engine import sampling_params

    return [
        sampling_params(
            num_samples=sampling.num_samples,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=problem_seed(sampling.seed, p.problem_id),
            logprobs=logprobs,
        )
        for p in problems
    ]


def _rows(problems, prompts, outputs, num_samples: int, logprobs: bool) -> list:
    from megatron_o1p.data.records import RolloutRow
    from megatron_o1p.rollout.vllm_engine import sampled_logprobs

    rows = []
    for problem, ids, out in zip(problems, prompts, outputs):
        if len(out.outputs) != num_samples:
            raise RuntimeError(
                f"vLLM returned {len(out.outputs)} samples for problem {problem.problem_id!r}, "
                f"asked for {num_samples}"
            )
        for k, sample in enumerate(sorted(out.outputs, key=lambda s: s.index)):
            token_ids = list(sample.token_ids)
            rows.append(
                RolloutRow(
                    problem_id=problem.problem_id,
                    sample_index=k,
                    problem=problem.problem,
                    answer=problem.answer,
                    prompt_ids=list(ids),
                    response_text=sample.text,
                    response_ids=token_ids,
                    sampler_logprobs=(
                        sampled_logprobs(token_ids, sample.logprobs) if logprobs else None
                    ),
                    finish_reason=sample.finish_reason,
                    length=len(token_ids),
                )
            )
    return rows


def _progress(cfg: SampleConfig, total: int):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=f"sample {cfg.shard_index}/{cfg.num_shards}",
        unit="problem",
        file=sys.stderr,
        disable=not cfg.progress,
    )
