"""The compare stage: evaluated runs against a baseline, as in O1-Pruner Table 2.

    o1p evaluate --model base-hf   --benchmark math=math500.jsonl ... --out eval/baseline
    o1p evaluate --model pruned-hf --benchmark math=math500.jsonl ... --out eval/o1-pruner
    o1p compare --baseline eval/baseline eval/fast-prompt eval/o1-pruner --out cmp/ \\
        [--alpha 1 --beta 3 --gamma 5] [--paper-aes] [--names baseline,fast,o1p]

In-process: `compare_table(baseline_dir, run_dirs, names=None, weights=AESWeights())` returns
the rows as data (see `compare_table`).

Reads each directory's `summary.json` (written by `o1p evaluate`) and refuses, in one line
naming the directory and the benchmark, a run whose benchmark names or benchmark files (their
sha256) differ from the baseline's. Per method (the baseline first) and per benchmark:

- Acc: the evaluate `accuracy` (mean over samples: pass@1) in percent;
- Length: mean response tokens;
- AES against the baseline (`aes.py`; the baseline's own AES is 0);

and the average over benchmarks the way the paper's "AVERAGE" columns are computed (checked on
every row of its Table 2): Acc and Length are the means of the per-benchmark values, AES is the
mean of the per-benchmark AES values (not the AES of the averaged Acc and Length).

Outputs in OUT, each written under a temporary name and renamed; nothing is written before
every input has been read and checked, so an error leaves no partial output:

    compare.csv   method, run_dir, then per benchmark NAME_acc (percent), NAME_length,
                  NAME_aes, then avg_acc, avg_length, avg_aes (full precision)
    compare.md    the printed Markdown table with the AES settings
    compare.png   accuracy vs mean length, one point per method: one panel per benchmark and
                  one for the average

Tested by tests/unit/commands/test_compare.py and tests/e2e/test_compare_cli.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from megatron_o1p.atomic import write_bytes
from megatron_o1p.config.flags import Flags, flag, shared
from megatron_o1p.errors import ConfigError, DataError
from megatron_o1p.evaluation.aes import (
    AESWeights,
    aes_from_deltas,
    average_aes,
    delta_accuracy,
    delta_length,
)
from megatron_o1p.plots import compare_figure, require_matplotlib

SUMMARY_NAME = "summary.json"
CSV_NAME = "compare.csv"
MD_NAME = "compare.md"
PLOT_NAME = "compare.png"
_EVALUATE_HINT = "run `o1p evaluate --out DIR` first"


@dataclass
class CompareConfig(Flags):
    """Settings of the compare stage (flags map one-to-one onto fields; RUN_DIRs are
    positional, so `o1p compare` adds them itself)."""

    baseline: Path = flag(help="the baseline's `o1p evaluate` output directory")
    """The baseline's `o1p evaluate` output directory."""
    runs: list[Path]
    """The other methods' `o1p evaluate` output directories."""
    out: Path = shared("out", "directory for compare.csv, compare.md and compare.png")
    """Output directory for compare.csv, compare.md and compare.png."""
    names: list[str] | None = flag(
        None, "comma-separated method names, the baseline first (default: the directory names)"
    )
    """One name per method, the baseline first; None = the directories' basenames. The flag's
    comma-separated text is split here."""
    weights: AESWeights = field(default_factory=AESWeights)
    """alpha, beta, gamma and the AES mode (--paper-aes)."""

    def __post_init__(self):
        self.baseline = Path(self.baseline)
        self.runs = [Path(r) for r in self.runs]
        self.out = Path(self.out)
        if isinstance(self.names, str):
            self.names = self.names.split(",")
        if not self.runs:
            raise ConfigError("no run to compare; pass one or more RUN_DIRs after --baseline")
        _method_names(self.baseline, self.runs, self.names)  # refuse bad --names now


@dataclass
class CompareResult:
    rows: list[dict]
    """`compare_table`'s rows."""
    benchmarks: list[str]
    markdown: str
    """The printed Markdown table."""
    paths: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------- reading


def load_summary(run_dir: str | Path) -> dict:
    """The `summary.json` of an `o1p evaluate` output directory, checked.

    Raises:
        DataError: no such file, not JSON, not an evaluate summary, or a benchmark without
            a usable accuracy, mean length or sha256.
    """
    path = Path(run_dir) / SUMMARY_NAME
    if not path.is_file():
        raise DataError(f"no {SUMMARY_NAME}; {_EVALUATE_HINT}", path=str(run_dir))
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"not valid JSON ({err}); rerun `o1p evaluate`", path=str(path)) from err
    if not isinstance(summary, dict):
        summary = {}
    benchmarks = summary.get("benchmarks")
    if summary.get("stage") != "evaluate" or not isinstance(benchmarks, dict) or not benchmarks:
        raise DataError(f"not an `o1p evaluate` summary; {_EVALUATE_HINT}", path=str(path))
    for name, b in benchmarks.items():
        ok = isinstance(b, dict) and isinstance(b.get("sha256"), str)
        for key in ("accuracy", "mean_length"):
            value = b.get(key) if isinstance(b, dict) else None
            ok = ok and isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
        if not ok:
            raise DataError(
                f"benchmark {name!r} lacks a sha256 or a finite accuracy / mean_length >= 0; "
                "rerun `o1p evaluate`",
                path=str(path),
            )
    return summary


def _check_same_benchmarks(base_dir: Path, base: dict, run_dir: Path, run: dict) -> None:
    expected, got = base["benchmarks"], run["benchmarks"]
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks benchmark(s) {', '.join(missing)}")
        if extra:
            parts.append(f"has benchmark(s) {', '.join(extra)} that the baseline lacks")
        raise DataError(
            f"{' and '.join(parts)} (baseline {base_dir}: {', '.join(expected)}); evaluate every "
            "run on the baseline's --benchmark set",
            path=str(run_dir),
        )
    for name, b in expected.items():
        if got[name]["sha256"] != b["sha256"]:
            raise DataError(
                f"benchmark {name} was evaluated on another file than the baseline {base_dir} "
                f"(sha256 {got[name]['sha256'][:12]} of {got[name].get('file')} vs "
                f"{b['sha256'][:12]} of {b.get('file')}); evaluate both on the same file",
                path=str(run_dir),
            )


def _method_names(baseline: Path, runs: list[Path], names: list[str] | None) -> list[str]:
    dirs = [baseline, *runs]
    if names is None:
        names = [d.resolve().name or str(d) for d in dirs]
        hint = "; name them with --names"
    else:
        names = [n.strip() for n in names]
        if len(names) != len(dirs):
            raise ConfigError(
                f"--names has {len(names)} name(s) for {len(dirs)} methods; give one per "
                "method, the baseline first"
            )
        if any(not n for n in names):
            raise ConfigError("--names has an empty name; give one per method, the baseline first")
        hint = ""
    seen = {}
    for n, d in zip(names, dirs):
        if n in seen:
            raise ConfigError(f"two methods are named {n!r} ({seen[n]} and {d}){hint}")
        seen[n] = d
    return names


def compare_table(
    baseline: str | Path,
    runs: list[str | Path],
    names: list[str] | None = None,
    weights: AESWeights | None = None,
) -> list[dict]:
    """The comparison as data: one dict per method, the baseline first.

    Args:
        baseline: the baseline's `o1p evaluate` output directory.
        runs: the other methods' output directories.
        names: one name per method, the baseline first; None = directory basenames.
        weights: AES weights and mode (default: alpha 1, beta 3, gamma 5, stated formula).

    Returns:
        [{"method": str, "run_dir": str, "is_baseline": bool,
          "benchmarks": {NAME: {"acc": percent, "length": tokens, "aes": float,
                                "d_length": float, "d_acc": float}},
          "average": {"acc": mean of acc, "length": mean of length, "aes": mean of aes}}]
        Benchmarks are in the baseline's order.

    Raises:
        DataError: a missing or bad summary.json, or a run on other benchmarks or files.
        ConfigError: bad --names, or two methods with the same name.
    """
    weights = weights or AESWeights()
    baseline = Path(baseline)
    runs = [Path(r) for r in runs]
    method_names = _method_names(baseline, runs, names)
    base = load_summary(baseline)
    summaries = [base]
    for run_dir in runs:
        run = load_summary(run_dir)
        _check_same_benchmarks(baseline, base, run_dir, run)
        summaries.append(run)
    bench_names = list(base["benchmarks"])
    rows = []
    for i, (name, run_dir, summary) in enumerate(zip(method_names, [baseline, *runs], summaries)):
        per = {}
        for b in bench_names:
            ref, got = base["benchmarks"][b], summary["benchmarks"][b]
            d_len = delta_length(ref["mean_length"], got["mean_length"])
            d_acc = delta_accuracy(ref["accuracy"], got["accuracy"])
            per[b] = {
                "acc": 100.0 * got["accuracy"],
                "length": float(got["mean_length"]),
                "aes": aes_from_deltas(d_len, d_acc, weights),
                "d_length": d_len,
                "d_acc": d_acc,
            }
        rows.append(
            {
                "method": name,
                "run_dir": str(run_dir),
                "is_baseline": i == 0,
                "benchmarks": per,
                "average": {
                    "acc": sum(v["acc"] for v in per.values()) / len(per),
                    "length": sum(v["length"] for v in per.values()) / len(per),
                    "aes": average_aes([v["aes"] for v in per.values()]),
                },
            }
        )
    return rows


# --------------------------------------------------------------------------- formatting


def _fmt(value: float, digits: int) -> str:
    if math.isinf(value) or math.isnan(value):
        return str(value)
    return f"{value:.{digits}f}"


def format_markdown(rows: list[dict]) -> str:
    """The Markdown table: method | per benchmark Acc, Len, AES | Avg Acc, Len, AES."""
    benches = list(rows[0]["benchmarks"])
    head = ["method"]
    for b in benches + ["Avg"]:
        head += [f"{b} Acc", f"{b} Len", f"{b} AES"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1))]
    lines[1] += "|"
    for r in rows:
        cells = [r["method"]]
        for v in [r["benchmarks"][b] for b in benches] + [r["average"]]:
            cells += [_fmt(v["acc"], 1), _fmt(v["length"], 0), _fmt(v["aes"], 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _weights_line(weights: AESWeights) -> str:
    mode = (
        "the paper's printed Table 2 (+beta*|dAcc| even when accuracy drops, --paper-aes)"
        if weights.paper
        else "the stated formula (-gamma*|dAcc| when accuracy drops)"
    )
    return (
        f"AES: alpha={weights.alpha:g}, beta={weights.beta:g}, gamma={weights.gamma:g}; {mode}. "
        "dLength = (Lb - Lm)/Lb, dAcc = (Am - Ab)/Ab (relative)."
    )


def _markdown_file(rows: list[dict], weights: AESWeights) -> str:
    return (
        "# o1p compare\n\n"
        f"Baseline: `{rows[0]['run_dir']}`. Acc in percent (mean over samples), Len = mean "
        "response tokens. Avg: means of the per-benchmark Acc, Len and AES (as the paper's "
        f"AVERAGE).\n\n{_weights_line(weights)}\n\n{format_markdown(rows)}\n"
    )


def _csv_text(rows: list[dict]) -> str:
    benches = list(rows[0]["benchmarks"])
    f = io.StringIO(newline="")
    w = csv.writer(f, lineterminator="\n")
    head = ["method", "run_dir"]
    for b in benches + ["avg"]:
        head += [f"{b}_acc", f"{b}_length", f"{b}_aes"]
    w.writerow(head)
    for r in rows:
        cells = [r["method"], r["run_dir"]]
        for v in [r["benchmarks"][b] for b in benches] + [r["average"]]:
            cells += [repr(float(v["acc"])), repr(float(v["length"])), repr(float(v["aes"]))]
        w.writerow(cells)
    return f.getvalue()


def _png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def run_compare(cfg: CompareConfig) -> CompareResult:
    """Read and check every summary, build the table, then write CSV, Markdown and PNG.

    Raises:
        DataError, ConfigError: see `compare_table`; nothing is written then.
        SetupError: matplotlib is missing.
    """
    require_matplotlib("o1p compare")
    rows = compare_table(cfg.baseline, cfg.runs, cfg.names, cfg.weights)
    files = {
        CSV_NAME: _csv_text(rows).encode(),
        MD_NAME: _markdown_file(rows, cfg.weights).encode(),
        PLOT_NAME: _png_bytes(compare_figure(rows)),
    }
    paths = [write_bytes(cfg.out / name, data) for name, data in files.items()]
    return CompareResult(
        rows=rows,
        benchmarks=list(rows[0]["benchmarks"]),
        markdown=_weights_line(cfg.weights) + "\n\n" + format_markdown(rows),
        paths=paths,
    )
