"""The build-dataset stage: graded rollouts -> the length-harmonizing dataset (eq. 8-10).

    o1p sample ... --out rollouts/ && o1p grade rollouts/ graded/
    o1p build-dataset --rollouts graded/ --out data/train.parquet --lambda 2 \\
        --rows-per-problem 2 --reward-clip -2 4 --normalize zscore --reward o1-pruner --seed 0

For each problem x with K graded samples:

    Lbar_ref(x) = mean_k L(y_k)          (eq. 8, over ALL K samples, tokens)
    Abar_ref(x) = mean_k A(x, y_k)       (eq. 9, over all K)
    reward_k    = R_LH(x, y_k)           (eq. 10, `rewards.REWARDS[--reward]`)

then `--rows-per-problem` samples per problem are drawn without replacement (seeded by
`--seed` and the problem id, so the choice does not depend on file order), and their rewards
are clipped to `--reward-clip` and z-scored over the whole dataset (`rewards.clip_and_normalize`)
into `advantage`, the weight of the eq. 11 loss. Writes three parquet files:

    OUT              DATASET_SCHEMA: prompt/response ids, reward (raw), advantage, per-problem stats
    OUT/../sft.parquet  up to 2 shortest correct samples per problem (SFT baseline)
    OUT/../dpo.parquet  one pair per problem: shortest correct (chosen) vs longest (rejected)

Each file carries the tokenizer fingerprint `o1p sample` recorded on the shards (parquet schema
metadata, `data/fingerprint.py`), which `o1p train` and `o1p ref-logprobs` check against the
checkpoint's tokenizer.

Edge cases (defined here, tested in tests/unit/data/test_build_dataset.py):
- zero-length responses: count 0 in Lbar; R_LH treats L=0 as 1 (see rewards.py).
- K=1: Lbar = L and Abar = A, so R_LH = 0 (for L >= 1); the row is kept; no DPO pair.
- all-identical lengths: the length term is 0; no DPO pair (no length preference).
- no correct sample: rows are kept (Abar = 0); no SFT rows and no DPO pair.
- missing answers: a response with no extractable answer was graded incorrect (A = 0) by
  `o1p grade`; a row whose `correct` is null or absent is a DataError (grade it first).
- fewer than --rows-per-problem samples: all of them are taken.
- DPO ties: the longest sample must be strictly longer than the chosen one.

Differs from the official code: it picks 2 samples with Python's global `random` state; we seed
per problem so reruns and reordered inputs give the same rows.
"""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass, field
from pathlib import Path

from megatron_o1p.config.choices import NORMALIZATIONS, REWARDS
from megatron_o1p.config.flags import Flags, flag, require, shared
from megatron_o1p.data.fingerprint import rollouts_fingerprint, tag_table
from megatron_o1p.data.records import (
    DATASET_SCHEMA,
    DPO_SCHEMA,
    SFT_SCHEMA,
    GradedSample,
    ScoredRow,
    to_table,
)
from megatron_o1p.data.shards import read_shards, write_file_atomic
from megatron_o1p.errors import ConfigError, DataError
from megatron_o1p.rewards import DEFAULT_LAMBDA, clip_and_normalize, per_problem_stats
from megatron_o1p.rewards import REWARDS as REWARD_FUNCTIONS

_REQUIRED = ("problem_id", "sample_index", "prompt_ids", "response_ids", "correct")
SFT_PER_PROBLEM = 2
# Arguments of every reward function that are the samples, not hyper-parameters.
_SAMPLE_ARGS = ("lengths", "correct")


@dataclass
class BuildDatasetConfig(Flags):
    """Scoring settings of the build-dataset stage (flags map one-to-one onto fields, but for
    `--reward-param`, which `o1p build-dataset` parses into `reward_params`)."""

    lam: float = flag(
        DEFAULT_LAMBDA,
        "lambda of eq. 10, the weight of the accuracy term (2 for Marco-o1-7B, 5 for QwQ-32B)",
        name="--lambda",
    )
    """lambda of eq. 10 (2 for Marco-o1-7B, 5 for QwQ-32B); used by --reward o1-pruner."""
    rows_per_problem: int = flag(
        2,
        "samples kept per problem, N or 'all' (the official code keeps 2)",
        type=str,
        metavar="N|all",
    )
    """Samples per problem kept as rows (official: 2); 0 = all. The flag's text (N or "all")
    is parsed here."""
    reward_clip: tuple[float, float] | None = flag(
        (-2.0, 4.0),
        "clip rewards to [LOW, HIGH] before normalising, as the official code does",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
    )
    """Clip bounds before normalising (official: [-2, 4]); None = no clipping."""
    no_reward_clip: bool = flag(False, "do not clip rewards (overrides --reward-clip)")
    """Sets `reward_clip` to None."""
    normalize: str = flag(
        "zscore", "zscore: over the whole dataset (official); none: raw", choices=NORMALIZATIONS
    )
    """"zscore" over the whole dataset (official) or "none"."""
    reward: str = flag(
        "o1-pruner", "per-sample reward (rewards.py): R_LH or an alternative", choices=REWARDS
    )
    """A name in rewards.REWARDS."""
    reward_params: dict = field(default_factory=dict)
    """Extra keyword hyper-parameters of the reward function (e.g. target_length for l1)."""
    seed: int = shared("seed", "seed of the per-problem row choice", default=0)
    """Seed of the per-problem row choice."""

    def __post_init__(self):
        require(
            self.reward in REWARDS,
            f"unknown reward {self.reward!r}; use one of {', '.join(REWARDS)}",
        )
        self.rows_per_problem = _rows_per_problem(self.rows_per_problem)
        require(
            self.normalize in NORMALIZATIONS,
            f"--normalize must be zscore or none, got {self.normalize!r}",
        )
        if self.no_reward_clip:
            self.reward_clip = None
        elif self.reward_clip is not None:
            self.reward_clip = tuple(self.reward_clip)
        require(
            self.reward_clip is None or self.reward_clip[0] <= self.reward_clip[1],
            f"--reward-clip low must be <= high, got {self.reward_clip}",
        )
        self._check_reward_params()

    def _check_reward_params(self) -> None:
        accepted = inspect.signature(REWARD_FUNCTIONS[self.reward]).parameters
        names = [k for k in accepted if k not in _SAMPLE_ARGS]
        for key in self.reward_params:
            require(
                key in names,
                f"--reward {self.reward} takes no parameter {key!r}; it takes {names}",
            )
        required = [
            k
            for k, p in accepted.items()
            if p.kind is p.KEYWORD_ONLY and p.default is p.empty and k not in self.reward_params
        ]
        if required:
            raise ConfigError(
                f"--reward {self.reward} needs {required}; pass --reward-param {required[0]}=VALUE"
            )

    def reward_kwargs(self) -> dict:
        if self.reward == "o1-pruner":
            return {"lam": self.lam, **self.reward_params}
        return dict(self.reward_params)


def _rows_per_problem(value: int | str) -> int:
    """`--rows-per-problem`: an int as given (0 = all), or the flag's text, N >= 1 or "all"."""
    if value == "all":
        return 0
    if isinstance(value, str):
        require(
            value.isdigit() and int(value) >= 1,
            f"--rows-per-problem must be a positive integer or 'all', got {value!r}",
        )
        return int(value)
    require(value >= 0, f"--rows-per-problem must be >= 1 or 'all', got {value}")
    return value


@dataclass
class BuildDatasetJob(Flags):
    """`o1p build-dataset`: the graded input, the dataset path, and the scoring settings."""

    rollouts: Path = shared("rollouts", "graded rollouts: an `o1p grade` folder or one .parquet")
    """An `o1p grade` shard directory or one graded parquet file."""
    out: Path = shared("out", "dataset .parquet (sft.parquet and dpo.parquet go beside it)")
    """The dataset parquet path; sft.parquet and dpo.parquet are written beside it."""
    scoring: BuildDatasetConfig = field(default_factory=BuildDatasetConfig)

    def __post_init__(self):
        self.rollouts, self.out = Path(self.rollouts), Path(self.out)
        _check_out(self.out)


def _check_out(out: Path) -> None:
    require(
        out.suffix == ".parquet" and out.name not in ("sft.parquet", "dpo.parquet"),
        f"--out must be a .parquet file other than sft.parquet/dpo.parquet, got {out}",
    )


@dataclass
class BuildSummary:
    problems: int = 0
    samples: int = 0
    rows: int = 0
    sft_rows: int = 0
    dpo_pairs: int = 0
    out: Path | None = None
    sft_out: Path | None = None
    dpo_out: Path | None = None


def read_graded(path: str | Path) -> list[GradedSample]:
    """Graded samples from an `o1p grade` directory of shards or one parquet file.

    Raises:
        DataError: a missing column, a null `correct`, a negative length, or a duplicate
            (problem_id, sample_index).
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():
        table = read_shards(path)
    elif path.is_file() and path.suffix == ".parquet":
        table = pq.read_table(path)
    else:
        raise DataError(
            "not a graded shard directory or .parquet file; run `o1p grade ROLLOUTS OUT`",
            path=str(path),
        )
    missing = [c for c in _REQUIRED if c not in table.column_names]
    if missing:
        hint = "run `o1p grade` on the rollouts first" if "correct" in missing else "rerun it"
        raise DataError(f"missing column(s) {missing}; {hint}", path=str(path))
    columns = {c: table.column(c).to_pylist() for c in table.column_names if c in _REQUIRED}
    lengths = table.column("length").to_pylist() if "length" in table.column_names else None
    samples, seen = [], set()
    for row in range(table.num_rows):
        key = (str(columns["problem_id"][row]), columns["sample_index"][row])
        if key in seen:
            raise DataError(
                f"duplicate sample {key}; the rollouts hold a sample twice (merged outputs?)",
                path=str(path),
                row=row,
            )
        seen.add(key)
        correct = columns["correct"][row]
        if correct is None:
            raise DataError(
                "`correct` is null; grade every row with `o1p grade`", path=str(path), row=row
            )
        response_ids = columns["response_ids"][row]
        length = len(response_ids) if lengths is None or lengths[row] is None else lengths[row]
        if length < 0:
            raise DataError(f"negative length {length}", path=str(path), row=row)
        samples.append(
            GradedSample(key[0], key[1], columns["prompt_ids"][row], response_ids, length, correct)
        )
    if not samples:
        raise DataError("no graded rows", path=str(path))
    return samples


def _group(samples: list[GradedSample]) -> dict[str, list[GradedSample]]:
    groups: dict[str, list[GradedSample]] = {}
    for s in samples:
        groups.setdefault(s.problem_id, []).append(s)
    for group in groups.values():
        group.sort(key=lambda s: s.sample_index)
    return groups


def _choose(group: list, k: int, seed: int, problem_id: str) -> list:
    if k == 0 or k >= len(group):
        return list(group)
    rng = random.Random(f"{seed}:{problem_id}")
    picked = sorted(rng.sample(range(len(group)), k))
    return [group[i] for i in picked]


def score(samples: list[GradedSample], cfg: BuildDatasetConfig) -> list[ScoredRow]:
    """Per-problem stats, per-sample rewards, row choice, clip and normalise (pure).

    Args:
        samples: every graded sample (all K of each problem).
        cfg: stage settings.

    Returns:
        The dataset rows, grouped by problem in first-seen order.
    """
    reward_fn, kwargs = REWARD_FUNCTIONS[cfg.reward], cfg.reward_kwargs()
    rows: list[ScoredRow] = []
    for pid, group in _group(samples).items():
        lengths = [s.length for s in group]
        correct = [1.0 if s.correct else 0.0 for s in group]
        mean_len, mean_acc = per_problem_stats(lengths, correct)
        try:
            rewards = reward_fn(lengths, correct, **kwargs)
        except ValueError as err:
            raise ConfigError(f"--reward {cfg.reward} on problem {pid!r}: {err}") from err
        by_index = {s.sample_index: r for s, r in zip(group, rewards)}
        for s in _choose(group, cfg.rows_per_problem, cfg.seed, pid):
            rows.append(
                ScoredRow(
                    **vars(s),
                    reward=float(by_index[s.sample_index]),
                    advantage=0.0,
                    num_samples=len(group),
                    mean_ref_length=mean_len,
                    mean_ref_accuracy=mean_acc,
                )
            )
    advantages = clip_and_normalize([r.reward for r in rows], cfg.reward_clip, cfg.normalize)
    for row, adv in zip(rows, advantages):
        row.advantage = float(adv)
    return rows


def sft_rows(samples: list[GradedSample]) -> list[dict]:
    """Up to `SFT_PER_PROBLEM` shortest correct samples per problem (ties: lower index)."""
    out = []
    for pid, group in _group(samples).items():
        correct = sorted((s for s in group if s.correct), key=lambda s: (s.length, s.sample_index))
        for s in correct[:SFT_PER_PROBLEM]:
            out.append(
                dict(
                    problem_id=pid,
                    sample_index=s.sample_index,
                    prompt_ids=s.prompt_ids,
                    response_ids=s.response_ids,
                    length=s.length,
                )
            )
    return out


def dpo_pairs(samples: list[GradedSample]) -> list[dict]:
    """Per problem: shortest correct (chosen) vs the longest sample (rejected), if longer."""
    out = []
    for pid, group in _group(samples).items():
        correct = [s for s in group if s.correct]
        if not correct:
            continue
        chosen = min(correct, key=lambda s: (s.length, s.sample_index))
        rejected = max(group, key=lambda s: (s.length, -s.sample_index))
        if rejected.length <= chosen.length:
            continue
        out.append(
            dict(
                problem_id=pid,
                prompt_ids=chosen.prompt_ids,
                chosen_ids=chosen.response_ids,
                rejected_ids=rejected.response_ids,
                chosen_sample_index=chosen.sample_index,
                rejected_sample_index=rejected.sample_index,
                chosen_length=chosen.length,
                rejected_length=rejected.length,
                rejected_correct=bool(rejected.correct),
            )
        )
    return out


def build_dataset(rollouts: str | Path, out: str | Path, cfg: BuildDatasetConfig) -> BuildSummary:
    """Read graded rollouts, score them, write OUT plus sft.parquet and dpo.parquet beside it.

    Args:
        rollouts: an `o1p grade` shard directory or one graded parquet file.
        out: the dataset parquet path (`.parquet`).
        cfg: stage settings.

    Returns:
        Counts and the paths written.

    Raises:
        DataError: bad graded rows (see `read_graded`).
        ConfigError: OUT is not a .parquet path or collides with sft/dpo.parquet.
    """
    out = Path(out)
    _check_out(out)
    fingerprint = rollouts_fingerprint(rollouts)  # recorded by `o1p sample`, kept by grade
    samples = read_graded(rollouts)
    rows = score(samples, cfg)
    sft, dpo = sft_rows(samples), dpo_pairs(samples)
    summary = BuildSummary(
        problems=len({s.problem_id for s in samples}),
        samples=len(samples),
        rows=len(rows),
        sft_rows=len(sft),
        dpo_pairs=len(dpo),
    )
    tables = {
        out.with_name("sft.parquet"): to_table(sft, SFT_SCHEMA),
        out.with_name("dpo.parquet"): to_table(dpo, DPO_SCHEMA),
        out: to_table(rows, DATASET_SCHEMA),
    }
    summary.sft_out, summary.dpo_out, summary.out = (
        write_file_atomic(tag_table(table, fingerprint), path) for path, table in tables.items()
    )
    return summary
