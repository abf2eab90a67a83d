#!/usr/bin/env python
"""Per-rank memory and start-up time of `o1p train`'s data: eager rows vs the memory map.

    python benchmarks/data_memory.py [--tokens 200000000] [--small-tokens 20000000] \
        [--eager-max-tokens 20000000] [--workdir DIR]

Writes two synthetic O1-Pruner datasets (prompt 100-500 tokens, response 1k-16k tokens with a
float32 reference log-prob each, an advantage) of --small-tokens and --tokens tokens, in chunks
of 128 rows so the writer stays small. Then each measurement is a fresh process playing data-
parallel rank 0 of 8 (global batch 64, micro-batch 2, --seq-length 16384, vocab 151,936): it
imports everything, then runs what `o1p train`'s preflight and first step do with the data, up
to the first step's micro-batches, and reports its peak RSS (`getrusage` ru_maxrss, imports
included) and the seconds from after the imports to those micro-batches:

    eager      the old path (`testing/eager_data.py`): load_rows (whole file as Python lists,
               every row checked), check_token_ids, to_sequences, StepBatches
    mmap cold  `open_dataset` with no cache: converts the parquet to its Arrow IPC copy (and
               scans it) on the way, then maps it; check_token_ids; StepBatches
    mmap warm  the same with the cache in place: what every later run, and every rank but
               the converting one, does

The eager path needs over 100 bytes per token at its peak (about 22 GB at 200M tokens),
so it runs only up to --eager-max-tokens; above that its figures are extrapolated linearly from
the largest size it ran at (memory above the import baseline, and time), and marked so.

Target: the mmap peak does not grow with the dataset and stays under 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VOCAB, SEQ_LENGTH, GLOBAL_BATCH, MICRO_BATCH, DP_SIZE = 151_936, 16_384, 64, 2, 8
CHUNK_ROWS = 128


def write_dataset(path: Path, tokens: int, seed: int = 0) -> dict:
    """A synthetic o1-pruner parquet of about `tokens` tokens, written 128 rows at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    written, rows = 0, 0
    with pq.ParquetWriter(path, _schema()) as writer:
        while written < tokens:
            prompts = rng.integers(100, 501, CHUNK_ROWS)
            responses = rng.integers(1_000, 16_001, CHUNK_ROWS)
            columns = {
                "prompt_ids": _lists(prompts, rng.integers(0, VOCAB, prompts.sum(), np.int32)),
                "response_ids": _lists(
                    responses, rng.integers(0, VOCAB, responses.sum(), np.int32)
                ),
                "ref_logprobs": _lists(
                    responses, -rng.exponential(2.0, responses.sum()).astype(np.float32)
                ),
                "advantage": pa.array(rng.standard_normal(CHUNK_ROWS)),
            }
            writer.write_table(pa.table(columns, schema=_schema()))
            written += int(prompts.sum() + responses.sum())
            rows += CHUNK_ROWS
    return {"tokens": written, "rows": rows, "bytes": path.stat().st_size}


def _schema():
    import pyarrow as pa

    ids = pa.list_(pa.int32())
    return pa.schema(
        [
            ("prompt_ids", ids),
            ("response_ids", ids),
            ("ref_logprobs", pa.list_(pa.float32())),
            ("advantage", pa.float64()),
        ]
    )


def _lists(lengths, values):
    import numpy as np
    import pyarrow as pa

    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


# -- one measurement, in its own process -----------------------------------------------------


def eager_first_step(path: Path):
    """The old path: every row as Python lists on every rank, then the first micro-batches."""
    from megatron_o1p.testing.eager_data import check_token_ids, load_rows, to_sequences
    from megatron_o1p.training.data import StepBatches

    rows = load_rows(path, "o1-pruner")
    check_token_ids(path, rows, VOCAB)
    examples = to_sequences(rows, "o1-pruner", SEQ_LENGTH)
    batches = StepBatches(examples, GLOBAL_BATCH, MICRO_BATCH, 0, DP_SIZE, seed=1234)
    return batches.micro_batches(0, 8, None)


def mmap_first_step(path: Path):
    """`o1p train`'s path: map the rows (converting once), read only this rank's."""
    from megatron_o1p.training.data import StepBatches
    from megatron_o1p.training.token_dataset import open_dataset

    dataset = open_dataset(path, "o1-pruner", SEQ_LENGTH)
    dataset.check_token_ids(VOCAB)
    batches = StepBatches(dataset, GLOBAL_BATCH, MICRO_BATCH, 0, DP_SIZE, seed=1234)
    return batches.micro_batches(0, 8, None)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, path: Path) -> None:
    import pyarrow.parquet  # noqa: F401  (imports before the clock and the baseline)
    import torch  # noqa: F401

    import megatron_o1p.testing.eager_data  # noqa: F401
    import megatron_o1p.training.token_dataset  # noqa: F401

    baseline = _peak_mib()
    start = time.perf_counter()
    micro_batches = (eager_first_step if mode == "eager" else mmap_first_step)(path)
    seconds = time.perf_counter() - start
    tokens = sum(int(b["loss_mask"].shape[0] * b["loss_mask"].shape[1]) for b in micro_batches)
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    print(
        json.dumps(
            {
                "peak_mib": _peak_mib(),
                "baseline_mib": baseline,
                "seconds": seconds,
                "micro_batches": len(micro_batches),
                "padded_tokens": tokens,
                "anon_mib": int(status["RssAnon"].split()[0]) / 1024,
                "file_mib": int(status["RssFile"].split()[0]) / 1024,
            }
        )
    )


def measure(mode: str, path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--child", mode, str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    if proc.returncode:
        raise SystemExit(f"{mode} on {path} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the table --------------------------------------------------------------------------------


def _row(tokens: int, mode: str, result: dict, note: str = "") -> None:
    peak, base = result["peak_mib"], result["baseline_mib"]
    at_end = f"{result['anon_mib']:>8.0f}{result['file_mib']:>8.0f}" if not note else " " * 16
    print(
        f"{tokens / 1e6:>8.0f}M  {mode:<10}{peak:>10.0f}{base:>10.0f}{at_end}"
        f"{result['seconds']:>10.2f}  {note}"
    )


def _extrapolate(measured: dict, tokens: int, at: int) -> dict:
    scale = tokens / at
    grown = measured["baseline_mib"] + (measured["peak_mib"] - measured["baseline_mib"]) * scale
    return {**measured, "peak_mib": grown, "seconds": measured["seconds"] * scale}


def run(sizes: dict, eager_max: int) -> None:
    """Measure every dataset of `sizes` ({tokens: path}); print the table and the ratios."""
    print(
        f"{'tokens':>9}  {'path':<10}{'peak MiB':>10}{'imports':>10}{'anon':>8}{'file':>8}"
        f"{'seconds':>10}   (MiB; anon/file: RSS at the end, own memory / mapped file pages)"
    )
    results = {}
    for tokens, path in sorted(sizes.items()):
        cache = path.with_name(path.name + ".o1p-cache")
        shutil.rmtree(cache, ignore_errors=True)
        for mode in ("mmap cold", "mmap warm"):
            results[tokens, mode] = measure("mmap", path)
            _row(tokens, mode, results[tokens, mode])
        if tokens <= eager_max:
            results[tokens, "eager"] = measure("eager", path)
            _row(tokens, "eager", results[tokens, "eager"])
    measured = max(t for t, mode in results if mode == "eager")
    for tokens in sorted(sizes):
        if (tokens, "eager") not in results:
            guess = _extrapolate(results[measured, "eager"], tokens, measured)
            results[tokens, "eager"] = guess
            _row(tokens, "eager", guess, f"extrapolated from {measured / 1e6:.0f}M")
    for tokens in sorted(sizes):
        eager, warm = results[tokens, "eager"], results[tokens, "mmap warm"]
        cold = results[tokens, "mmap cold"]
        print(
            f"{tokens / 1e6:.0f}M tokens: peak RSS eager / mmap = "
            f"{eager['peak_mib'] / warm['peak_mib']:.1f}x (warm), "
            f"{eager['peak_mib'] / cold['peak_mib']:.1f}x (cold); first micro-batches "
            f"eager / mmap = {eager['seconds'] / warm['seconds']:.0f}x (warm), "
            f"{eager['seconds'] / cold['seconds']:.1f}x (cold)"
        )
    small, big = min(sizes), max(sizes)
    growth = results[big, "mmap warm"]["peak_mib"] - results[small, "mmap warm"]["peak_mib"]
    print(
        f"mmap warm peak at {big / 1e6:.0f}M - at {small / 1e6:.0f}M tokens: {growth:+.0f} MiB "
        f"(target: independent of the size, and under 1024 MiB: "
        f"{max(r['peak_mib'] for (t, m), r in results.items() if m.startswith('mmap')):.0f})"
    )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        return child(sys.argv[2], Path(sys.argv[3]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200_000_000)
    parser.add_argument("--small-tokens", type=int, default=20_000_000)
    parser.add_argument("--eager-max-tokens", type=int, default=20_000_000)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="o1p_data_mem_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        sizes = {}
        for tokens in sorted({args.small_tokens, args.tokens}):
            path = work / f"train_{tokens // 1_000_000}M.parquet"
            start = time.perf_counter()
            info = write_dataset(path, tokens)
            sizes[tokens] = path
            print(
                f"wrote {path.name}: {info['rows']} rows, {info['tokens']:,} tokens, "
                f"{info['bytes'] / 2**30:.2f} GiB parquet in {time.perf_counter() - start:.0f} s"
            )
        run(sizes, max(args.eager_max_tokens, min(sizes)))  # eager runs at least once
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
