"""The analyze stage: the length-disharmony study of paper section 3 (Figure 1, Table 1).

    o1p sample ... --out rollouts/ && o1p grade rollouts/ graded/
    o1p analyze --rollouts graded/ --out analysis/ [--intervals 4] [--max-plot-problems 50]

Section 3 of O1-Pruner (Luo et al., 2025) samples K solutions per problem, splits them into 4
intervals by length, and computes the accuracy of each interval: per problem (Figure 1, "the
highest accuracy may manifest within the shortest, intermediate, or longest length intervals")
and averaged over problems (Table 1: Marco-o1 81.1, 80.2, 78.8, 75.3 % from the shortest
interval to the longest; QwQ-32B 44.9, 49.9, 45.9, 45.3 %). This stage repeats that study on
graded rollouts, and adds how often each interval is the most accurate one.

Interval rule (per problem, `assign_intervals`; tested in tests/unit/test_analysis.py):
- The K samples are ranked by (length, sample_index): ties in length are broken by
  sample_index, so the split does not depend on file order, and samples of equal length may
  land in adjacent intervals.
- With M intervals, the sample of rank r (0-based) goes to interval floor(r * M / K), i.e.
  interval i holds the ranks in the real-valued range [i * K / M, (i + 1) * K / M).
- K divisible by M: every interval holds K / M samples (K = 8, M = 4: 2, 2, 2, 2).
- K not divisible by M: sizes differ by at most one, as the range bounds fall
  (K = 6, M = 4: 2, 1, 2, 1).
- K < M: some intervals are empty (K = 3, M = 4: 1, 1, 1, 0; K = 2, M = 4: 1, 0, 1, 0).
  An empty interval has n = 0 and no accuracy or mean length (blank in the CSV); it is left
  out of that interval's averages and of the "best interval" counts, and `summary.csv` says
  over how many problems each interval is averaged.

Outputs in OUT (each written under a temporary name, then renamed):

    length_disharmony.csv  problem x interval: problem_id, interval (1 = shortest), n,
                           mean_length (tokens), accuracy (fraction correct)
    summary.csv            per interval, then "all": problems, samples, mean_length and
                           accuracy averaged over problems (each problem weighs the same, as in
                           Table 1), best_frac (share of problems whose highest accuracy is
                           reached in this interval; ties count for every tied interval, so the
                           column can sum to more than 1), sole_best_frac (this interval alone
                           is the most accurate)
    length_disharmony.png  left: per-problem accuracy across intervals (Figure 1, the first
                           --max-plot-problems problems in file order) and their mean; right:
                           mean accuracy and mean length per interval (Table 1)

The printed table has Table 1's layout: one column per interval, accuracy in percent.

Differs from the paper: it does not say how ties or K not divisible by 4 are handled (it uses
K = 512), so the rule above is ours; and it picks 64 random MATH test problems (hard ones
filtered out for QwQ-32B), where we analyze every problem in the input, so choose them when
sampling.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, field, fields
from fractions import Fraction
from pathlib import Path

from megatron_o1p.atomic import atomic_file
from megatron_o1p.config.flags import Flags, flag, shared
from megatron_o1p.errors import ConfigError, DataError
from megatron_o1p.plots import length_disharmony_figure, require_matplotlib

_REQUIRED = ("problem_id", "sample_index", "length", "correct")
_GRADE_HINT = "run `o1p grade ROLLOUTS GRADED` and pass GRADED to --rollouts"
PROBLEMS_CSV = "length_disharmony.csv"
SUMMARY_CSV = "summary.csv"
PLOT_PNG = "length_disharmony.png"


@dataclass
class AnalyzeConfig(Flags):
    """Settings of the analyze stage (flags map one-to-one onto fields)."""

    rollouts: Path = shared(
        "rollouts", "graded rollouts: the output directory of `o1p grade` (part-*.parquet)"
    )
    """An `o1p grade` output: a directory of part-*.parquet shards (or one .parquet file)."""
    out: Path = shared(
        "out", "directory for length_disharmony.csv, summary.csv and length_disharmony.png"
    )
    """Output directory (created if needed); the three files in it are replaced."""
    intervals: int = flag(
        4, "length intervals per problem, by rank within the problem, as in the paper"
    )
    """M, length intervals per problem (the paper: 4)."""
    max_plot_problems: int = flag(50, "problems drawn as thin lines in the per-problem panel")
    """Problems drawn as thin lines in the left panel (the first in file order); 0 = none."""

    def __post_init__(self):
        self.rollouts, self.out = Path(self.rollouts), Path(self.out)
        if self.intervals < 1:
            raise ConfigError(f"--intervals must be >= 1, got {self.intervals}")
        if self.max_plot_problems < 0:
            raise ConfigError(f"--max-plot-problems must be >= 0, got {self.max_plot_problems}")
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out {self.out} is a file; pass a directory")


# ---------------------------------------------------------------------------------------------
# Pure computation


@dataclass(frozen=True)
class IntervalStats:
    """One length interval of one problem."""

    interval: int
    """1-based; 1 holds the shortest samples."""
    n: int
    """Samples in the interval (0 when K < M leaves it empty)."""
    n_correct: int
    total_length: int
    """Sum of the samples' lengths, tokens."""

    @property
    def accuracy(self) -> float:
        """Fraction correct; nan for an empty interval."""
        return self.n_correct / self.n if self.n else math.nan

    @property
    def mean_length(self) -> float:
        """Mean length in tokens; nan for an empty interval."""
        return self.total_length / self.n if self.n else math.nan


@dataclass(frozen=True)
class SummaryRow:
    """One row of summary.csv: an interval (or "all") averaged over problems."""

    interval: str
    """"1".."M", or "all" for every sample of each problem."""
    problems: int
    """Problems averaged over (those where the interval is non-empty)."""
    samples: int
    mean_length: float
    """Mean over problems of the per-problem mean length, tokens."""
    accuracy: float
    """Mean over problems of the per-problem accuracy, in [0, 1]."""
    best_frac: float
    """Share of the problems whose highest interval accuracy is reached here (ties count for
    each tied interval); nan for "all"."""
    sole_best_frac: float
    """Share of the problems where this interval alone has the highest accuracy; nan for "all"."""


def assign_intervals(
    lengths: Sequence[int], n_intervals: int, tiebreak: Sequence | None = None
) -> list[int]:
    """The 0-based length interval of each sample of one problem (rule in the module docstring).

    Args:
        lengths: [K] response lengths, tokens.
        n_intervals: M >= 1.
        tiebreak: [K] keys that order samples of equal length (the sample_index); default:
            the position in `lengths`.

    Returns:
        [K] interval of each sample, in `lengths` order: floor(rank * M / K).
    """
    k = len(lengths)
    keys = range(k) if tiebreak is None else tiebreak
    ranked = sorted(range(k), key=lambda j: (lengths[j], keys[j]))
    out = [0] * k
    for rank, j in enumerate(ranked):
        out[j] = rank * n_intervals // k
    return out


def interval_stats(
    lengths: Sequence[int],
    correct: Sequence[bool],
    n_intervals: int = 4,
    tiebreak: Sequence | None = None,
) -> list[IntervalStats]:
    """Per-interval sample count, accuracy and mean length of one problem (Figure 1).

    Args:
        lengths: [K] response lengths, tokens.
        correct: [K] whether each response is correct.
        n_intervals: M >= 1.
        tiebreak: [K] sample indices ordering equal lengths (see `assign_intervals`).

    Returns:
        M stats, interval 1 (shortest) first; empty intervals have n = 0.
    """
    n = [0] * n_intervals
    n_correct = [0] * n_intervals
    total = [0] * n_intervals
    for i, length, ok in zip(assign_intervals(lengths, n_intervals, tiebreak), lengths, correct):
        n[i] += 1
        n_correct[i] += int(bool(ok))
        total[i] += int(length)
    return [IntervalStats(i + 1, n[i], n_correct[i], total[i]) for i in range(n_intervals)]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def summarize(per_problem: Sequence[Sequence[IntervalStats]]) -> list[SummaryRow]:
    """Average per-problem interval stats over problems (Table 1), plus an "all" row.

    Args:
        per_problem: for each problem, its M `IntervalStats` (as from `interval_stats`).

    Returns:
        M rows (interval 1 first), then "all": accuracy and mean length over every sample of
        each problem, averaged over problems.
    """
    n_intervals = len(per_problem[0]) if per_problem else 0
    best = [0] * n_intervals
    sole_best = [0] * n_intervals
    for stats in per_problem:
        # Exact fractions, so 1/2 and 2/4 tie.
        acc = {s.interval: Fraction(s.n_correct, s.n) for s in stats if s.n}
        top = max(acc.values())
        winners = [i for i, a in acc.items() if a == top]
        for i in winners:
            best[i - 1] += 1
        if len(winners) == 1:
            sole_best[winners[0] - 1] += 1
    rows = []
    for i in range(n_intervals):
        present = [stats[i] for stats in per_problem if stats[i].n]
        rows.append(
            SummaryRow(
                interval=str(i + 1),
                problems=len(present),
                samples=sum(s.n for s in present),
                mean_length=_mean([s.mean_length for s in present]),
                accuracy=_mean([s.accuracy for s in present]),
                best_frac=best[i] / len(present) if present else math.nan,
                sole_best_frac=sole_best[i] / len(present) if present else math.nan,
            )
        )
    counts = [sum(s.n for s in stats) for stats in per_problem]
    rows.append(
        SummaryRow(
            interval="all",
            problems=len(per_problem),
            samples=sum(counts),
            mean_length=_mean(
                [sum(s.total_length for s in st) / c for st, c in zip(per_problem, counts)]
            ),
            accuracy=_mean(
                [sum(s.n_correct for s in st) / c for st, c in zip(per_problem, counts)]
            ),
            best_frac=math.nan,
            sole_best_frac=math.nan,
        )
    )
    return rows


def format_table(rows: Sequence[SummaryRow]) -> str:
    """Table 1's layout: one column per interval (then "all"), accuracy in percent."""

    def pct(x: float) -> str:
        return "-" if math.isnan(x) else f"{100 * x:.1f}"

    def num(x: float) -> str:
        return "-" if math.isnan(x) else f"{x:.1f}"

    header = ["", *(f"interval {r.interval}" if r.interval != "all" else "all" for r in rows)]
    body = [
        ["accuracy (%)", *(pct(r.accuracy) for r in rows)],
        ["mean length (tokens)", *(num(r.mean_length) for r in rows)],
        ["most accurate (% of problems)", *(pct(r.best_frac) for r in rows)],
        ["solely most accurate (%)", *(pct(r.sole_best_frac) for r in rows)],
        ["problems", *(str(r.problems) for r in rows)],
        ["samples", *(str(r.samples) for r in rows)],
    ]
    widths = [max(len(line[c]) for line in [header, *body]) for c in range(len(header))]
    lines = []
    for line in [header, *body]:
        cells = [line[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(line[1:], widths[1:])]
        lines.append("  ".join(cells))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Reading graded rollouts


@dataclass
class Problem:
    """The graded samples of one problem, in read order."""

    problem_id: str
    sample_indices: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)


def _input_files(path: Path) -> list[Path]:
    from megatron_o1p.data.shards import complete_shards

    if path.is_file() and path.suffix == ".parquet":
        return [path]
    if not path.is_dir():
        raise DataError(f"no such directory; {_GRADE_HINT}", path=str(path))
    shards = list(complete_shards(path).values())
    if not shards:
        raise DataError(f"no part-*.parquet shards; {_GRADE_HINT}", path=str(path))
    return shards


def read_problems(path: str | Path) -> list[Problem]:
    """Graded samples grouped by problem (first-seen order), reading only the needed columns.

    Args:
        path: an `o1p grade` shard directory, or one graded .parquet file.

    Returns:
        One `Problem` per problem_id.

    Raises:
        DataError: no shards, a missing column (no `correct`: the rollouts are not graded), a
            null `correct` or `length`, a negative length, or a duplicate
            (problem_id, sample_index).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    problems: dict[str, Problem] = {}
    seen: set[tuple[str, int]] = set()
    for shard in _input_files(Path(path)):
        try:
            names = pq.read_schema(shard).names
            missing = [c for c in _REQUIRED if c not in names]
            if missing:
                hint = _GRADE_HINT if "correct" in missing else "rerun `o1p sample` and `o1p grade`"
                raise DataError(f"missing column(s) {missing}; {hint}", path=str(shard))
            table = pq.read_table(shard, columns=list(_REQUIRED))
        except (pa.ArrowInvalid, OSError) as err:
            raise DataError(
                f"unreadable parquet ({err}); delete it and rerun `o1p grade`", path=str(shard)
            ) from err
        cols = [table.column(c).to_pylist() for c in _REQUIRED]
        for row, (pid, index, length, ok) in enumerate(zip(*cols)):
            if ok is None or length is None:
                what = "`correct`" if ok is None else "`length`"
                raise DataError(f"{what} is null; {_GRADE_HINT}", path=str(shard), row=row)
            if length < 0:
                raise DataError(f"negative length {length}", path=str(shard), row=row)
            key = (str(pid), int(index))
            if key in seen:
                raise DataError(
                    f"duplicate sample {key}; the rollouts hold a sample twice (merged outputs?)",
                    path=str(shard),
                    row=row,
                )
            seen.add(key)
            problem = problems.setdefault(key[0], Problem(key[0]))
            problem.sample_indices.append(key[1])
            problem.lengths.append(int(length))
            problem.correct.append(bool(ok))
    if not problems:
        raise DataError(f"no graded rows; {_GRADE_HINT}", path=str(path))
    return list(problems.values())


# ---------------------------------------------------------------------------------------------
# Writing


def _write_csv(path: Path, header: list[str], rows: Iterable[list]) -> Path:
    """A CSV file (the csv module's line endings), written atomically."""
    with atomic_file(path) as tmp:
        # newline="": the csv module writes its own line endings.
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    return path


def _cell(x: float) -> str | float:
    return "" if math.isnan(x) else x


def _write_problems_csv(path: Path, problems: list[Problem], stats: list[list[IntervalStats]]):
    rows = (
        [problem.problem_id, s.interval, s.n, _cell(s.mean_length), _cell(s.accuracy)]
        for problem, per_interval in zip(problems, stats)
        for s in per_interval
    )
    return _write_csv(path, ["problem_id", "interval", "n", "mean_length", "accuracy"], rows)


def _write_summary_csv(path: Path, rows: list[SummaryRow]):
    cells = ([_cell(v) if isinstance(v, float) else v for v in astuple(r)] for r in rows)
    return _write_csv(path, [f.name for f in fields(SummaryRow)], cells)


def _write_plot(
    path: Path, stats: list[list[IntervalStats]], rows: list[SummaryRow], max_problems: int
) -> Path:
    fig = length_disharmony_figure(stats, rows, max_problems)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path


# ---------------------------------------------------------------------------------------------
# The stage


@dataclass
class AnalyzeSummary:
    problems: int
    samples: int
    rows: list[SummaryRow]
    table: str
    """The printed Table-1-style table."""
    paths: list[Path]


def analyze(cfg: AnalyzeConfig) -> AnalyzeSummary:
    """Read graded rollouts, compute the per-problem and averaged interval stats, write outputs.

    Args:
        cfg: stage settings, including the input and output paths.

    Returns:
        Counts, the averaged rows, the formatted table and the files written.

    Raises:
        DataError: bad or ungraded input (see `read_problems`).
        SetupError: matplotlib is missing.
    """
    require_matplotlib("o1p analyze")  # before any work, so a missing package does not cost a read
    problems = read_problems(cfg.rollouts)
    stats = [
        interval_stats(p.lengths, p.correct, cfg.intervals, tiebreak=p.sample_indices)
        for p in problems
    ]
    rows = summarize(stats)
    cfg.out.mkdir(parents=True, exist_ok=True)
    paths = [
        _write_problems_csv(cfg.out / PROBLEMS_CSV, problems, stats),
        _write_summary_csv(cfg.out / SUMMARY_CSV, rows),
        _write_plot(cfg.out / PLOT_PNG, stats, rows, cfg.max_plot_problems),
    ]
    return AnalyzeSummary(
        problems=len(problems),
        samples=sum(len(p.lengths) for p in problems),
        rows=rows,
        table=format_table(rows),
        paths=paths,
    )
