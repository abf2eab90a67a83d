"""`o1p evaluate`: flags -> EvaluateConfig -> evaluation.evaluate.run_evaluate.

The column flags of a problems file (`--preset`, `--problem-field`, `--answer-field`,
`--id-field`) are ProblemSource's, the same flags `o1p sample` takes once; here each is
repeatable and per benchmark: `VALUE` for every benchmark, `NAME=VALUE` for one. Parsing
`--benchmark NAME=FILE` and those `[NAME=]VALUE` lists is this module's job.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from megatron_o1p.config.engine import EngineConfig
from megatron_o1p.config.flags import option_name
from megatron_o1p.config.sampling import EVALUATION_DEFAULTS
from megatron_o1p.data.problems import COLUMN_FIELDS, ProblemSource
from megatron_o1p.errors import ConfigError
from megatron_o1p.evaluation.evaluate import Benchmark, EvaluateConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--benchmark",
        action="append",
        required=True,
        metavar="NAME=FILE",
        help="a benchmark: its name (output NAME.parquet) and a .jsonl/.json/.parquet problems "
        "file; repeat for several",
    )
    EvaluateConfig.add_arguments(parser)
    ProblemSource.add_arguments(_PerBenchmark(parser), only=COLUMN_FIELDS)
    parser.set_defaults(**EVALUATION_DEFAULTS)


def run(args: argparse.Namespace) -> int:
    from megatron_o1p.evaluation.evaluate import run_evaluate

    cfg = EvaluateConfig.from_args(
        args,
        benchmarks=benchmarks_from_args(args),
        # One --seed: the requests' base seed (SamplingConfig) also seeds the engine.
        engine=EngineConfig.from_args(args, seed=args.seed),
    )
    r = run_evaluate(cfg)
    print(
        f"o1p evaluate: {len(r.evaluated)} benchmark(s) evaluated, {len(r.skipped)} already "
        f"complete{' (' + ', '.join(r.skipped) + ')' if r.skipped else ''}, "
        f"{r.seconds:.1f} s -> {r.summary_path}",
        flush=True,
    )
    print(r.table, flush=True)
    return 0


class _PerBenchmark:
    """A parser proxy: the flags added through it become repeatable `[NAME=]VALUE` options.

    The flag strings, destinations and help stay those of the config that adds them; only the
    argparse mode changes (append; choices are checked per benchmark, when ProblemSource is
    made from the value after `NAME=`).
    """

    def __init__(self, parser: argparse.ArgumentParser):
        self._parser = parser

    def add_argument(self, *option_strings, **kwargs):
        metavar = kwargs.pop("metavar", None) or kwargs["dest"].upper()
        kwargs.pop("choices", None)
        kwargs.update(
            action="append",
            metavar=f"[NAME=]{metavar}",
            help=kwargs["help"] + "; VALUE for every benchmark or NAME=VALUE for one, repeatable",
        )
        return self._parser.add_argument(*option_strings, **kwargs)


def benchmarks_from_args(args: argparse.Namespace) -> list[Benchmark]:
    """The `--benchmark NAME=FILE` list, each with its own column mapping.

    Raises:
        ConfigError: a malformed `--benchmark` or per-benchmark value, or a bad preset.
    """
    specs = [parse_benchmark(s) for s in args.benchmark]
    names = [name for name, _ in specs]
    options = {f.name: option_name(f) for f in ProblemSource.flag_fields()}
    per = {
        key: parse_per_benchmark(options[key], getattr(args, key), names) for key in COLUMN_FIELDS
    }
    benchmarks = []
    for name, path in specs:
        try:
            source = ProblemSource(path, **{key: per[key][name] for key in COLUMN_FIELDS})
        except ConfigError as err:
            raise ConfigError(f"benchmark {name}: {err}") from err
        benchmarks.append(Benchmark(name, source))
    return benchmarks


def parse_benchmark(spec: str) -> tuple[str, str]:
    """`NAME=FILE` -> (NAME, FILE).

    Raises:
        ConfigError: no `=`, or an empty name or file.
    """
    name, sep, path = spec.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ConfigError(
            f"--benchmark {spec!r} must be NAME=FILE, e.g. --benchmark math500=data/math500.jsonl"
        )
    return name.strip(), path.strip()


def parse_per_benchmark(
    flag: str, values: Sequence[str] | None, names: Sequence[str]
) -> dict[str, str | None]:
    """A per-benchmark option given as `VALUE` (every benchmark) or `NAME=VALUE` (one).

    `NAME=VALUE` wins over a bare `VALUE` for that benchmark.

    Returns:
        benchmark name -> value (None where not given).

    Raises:
        ConfigError: `NAME=` naming no benchmark, or one benchmark (or the default) twice.
    """
    default, per = None, {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep:
            if default is not None:
                raise ConfigError(
                    f"{flag} given twice without a NAME= ({default!r}, {value!r}); "
                    f"use {flag} NAME=VALUE per benchmark"
                )
            default = value
            continue
        if name not in names:
            raise ConfigError(
                f"{flag} {value!r} names no benchmark (benchmarks: {', '.join(names)}); "
                f"use {flag} NAME=VALUE with a --benchmark NAME"
            )
        if name in per:
            raise ConfigError(f"{flag} is given twice for benchmark {name!r}")
        per[name] = rest
    return {n: per.get(n, default) for n in names}
