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

Differs from the official O1-Pruner code: it samples with vLLM 0.6.3 in a separate script
with no resume; its log-probs are not stored.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from megatron_o1p.data.fingerprint import FINGERPRINT_KEY, tag_table, tokenizer_fingerprint
from megatron_o1p.data.problems import Problem, ProblemSource, load_problems
from megatron_o1p.data.prompts import SPEED_PROMPTS, SYSTEM_PROMPT, load_tokenizer, prompt_ids
from megatron_o1p.data.records import ROLLOUT_SCHEMA, RolloutRow, to_table
from megatron_o1p.data.shards import check_config, complete_shards, write_shard
from megatron_o1p.errors import ConfigError, DataError
from megatron_o1p.rollout.vllm_engine import LOGPROBS_MODE, EngineConfig

# Per-request seeds stay below 2**31 (vLLM adds the sample index; C generators take int64).
_SEED_MOD = 2**31 - 2**16


@dataclass
class SampleConfig:
    """Settings of the sample stage (flags map one-to-one onto fields)."""

    source: ProblemSource
    """Problems file and column mapping."""
    engine: EngineConfig
    """vLLM engine settings (model folder, TP, dtype, KV cache)."""
    out: Path
    """Output directory of rollout shards."""
    num_samples: int = 16
    """K, samples per problem (paper: 16 for Marco-o1, 12 for QwQ)."""
    temperature: float = 0.5
    """Sampling temperature (official code: 0.5)."""
    top_p: float = 0.8
    """Nucleus mass (official code: 0.8)."""
    max_tokens: int = 8192
    """Response token limit; longer responses end with finish_reason "length"."""
    seed: int = 0
    """Base seed; each problem's request seed derives from it and the problem id."""
    speed_prompt: str = "normal"
    """"fast" appends the paper's fast-solving suffix to every problem."""
    system_prompt: str = SYSTEM_PROMPT
    """System turn asking for a \\boxed{} answer; "" for none."""
    problems_per_shard: int = 64
    """Problems per output shard (the unit of resume)."""
    num_shards: int = 1
    """N data-parallel invocations sharing the output directory."""
    shard_index: int = 0
    """This invocation's index in [0, N)."""
    overwrite: bool = False
    """Replace an output directory written with a different config."""
    progress: bool = True
    """tqdm bar on stderr (problems, with generated tokens/s)."""

    def __post_init__(self):
        self.out = Path(self.out)
        checks = [
            (self.num_samples >= 1, f"--num-samples must be >= 1, got {self.num_samples}"),
            (self.temperature >= 0, f"--temperature must be >= 0, got {self.temperature}"),
            (0 < self.top_p <= 1, f"--top-p must be in (0, 1], got {self.top_p}"),
            (self.max_tokens >= 1, f"--max-tokens must be >= 1, got {self.max_tokens}"),
            (
                self.problems_per_shard >= 1,
                f"--problems-per-shard must be >= 1, got {self.problems_per_shard}",
            ),
            (self.num_shards >= 1, f"--num-shards must be >= 1, got {self.num_shards}"),
            (
                0 <= self.shard_index < self.num_shards,
                f"--shard-index must be in [0, {self.num_shards}), got {self.shard_index}",
            ),
            (
                self.speed_prompt in SPEED_PROMPTS,
                f"--speed-prompt must be one of {SPEED_PROMPTS}, got {self.speed_prompt!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def recorded(self, num_problems: int, tokenizer_sha256: str | None = None) -> dict:
        """What determines the output directory (not N, i, or where the engine runs); the
        tokenizer fingerprint travels on to the dataset (`data/fingerprint.py`)."""
        problems = asdict(self.source)
        if Path(self.source.path).exists():  # local files: the same file from any cwd
            problems["path"] = str(Path(self.source.path).resolve())
        return {
            "stage": "sample",
            "model": str(Path(self.engine.model).resolve()),
            "dtype": self.engine.dtype,
            "problems": problems,
            "num_problems": num_problems,
            "num_samples": self.num_samples,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "speed_prompt": self.speed_prompt,
            "system_prompt": self.system_prompt,
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
        SetupError: no vLLM, or no tokenizer with a chat template.
    """
    start = time.monotonic()
    problems = load_problems(cfg.source)
    tokenizer = load_tokenizer(cfg.engine.model)
    fingerprint = tokenizer_fingerprint(tokenizer)
    check_config(cfg.out, cfg.recorded(len(problems), fingerprint), overwrite=cfg.overwrite)
    chunks = owned_chunks(len(problems), cfg)
    done = complete_shards(cfg.out)
    pending = [(c, idx) for c, idx in chunks if c not in done]
    summary = SampleSummary(shards_total=len(chunks), shards_skipped=len(chunks) - len(pending))
    if not pending:
        summary.seconds = time.monotonic() - start
        return summary

    from megatron_o1p.rollout.vllm_engine import build_engine

    llm = build_engine(cfg.engine)
    max_len = llm.llm_engine.model_config.max_model_len
    bar = _progress(cfg, sum(len(idx) for _, idx in pending))
    gen_start = time.monotonic()
    try:
        for shard, idx in pending:
            chunk = [problems[i] for i in idx]
            prompts = [_prompt(tokenizer, p, cfg, max_len, row=i) for p, i in zip(chunk, idx)]
            rows = _generate(llm, chunk, prompts, cfg)
            write_shard(cfg.out, shard, tag_table(to_table(rows, ROLLOUT_SCHEMA), fingerprint))
            summary.shards_written += 1
            summary.rows_written += len(rows)
            summary.tokens += sum(r.length for r in rows)
            bar.update(len(chunk))
            elapsed = max(time.monotonic() - gen_start, 1e-9)
            bar.set_postfix_str(f"{summary.tokens / elapsed:.0f} tok/s")
    finally:
        bar.close()
    summary.seconds = time.monotonic() - start
    return summary


def _prompt(tokenizer, problem: Problem, cfg: SampleConfig, max_len: int, row: int) -> list[int]:
    ids = prompt_ids(
        tokenizer, problem.problem, speed=cfg.speed_prompt, system_prompt=cfg.system_prompt
    )
    if len(ids) >= max_len:
        raise DataError(
            f"problem {problem.problem_id!r}: the prompt has {len(ids)} tokens, the model "
            f"context is {max_len}; shorten or drop the problem, or raise --max-model-len",
            path=cfg.source.path,
            row=row,
        )
    return ids


def _generate(llm, chunk: list[Problem], prompts: list[list[int]], cfg: SampleConfig):
    from vllm.inputs import TokensPrompt

    from megatron_o1p.rollout.vllm_engine import sampled_logprobs, sampling_params

    params = [
        sampling_params(
            num_samples=cfg.num_samples,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_tokens=cfg.max_tokens,
            seed=problem_seed(cfg.seed, p.problem_id),
        )
        for p in chunk
    ]
    outputs = llm.generate(
        [TokensPrompt(prompt_token_ids=ids) for ids in prompts], params, use_tqdm=False
    )
    rows = []
    for problem, ids, out in zip(chunk, prompts, outputs):
        if len(out.outputs) != cfg.num_samples:
            raise RuntimeError(
                f"vLLM returned {len(out.outputs)} samples for problem {problem.problem_id!r}, "
                f"asked for {cfg.num_samples}"
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
                    sampler_logprobs=sampled_logprobs(token_ids, sample.logprobs),
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
