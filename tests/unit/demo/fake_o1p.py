"""A stand-in for the `o1p` subprocesses of the demo's stages: the wiring tests of
demo/pipeline.py and demo/ablation.py check which commands run, in which order, on which files."""

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


class FakeO1p:
    """Stands in for `subprocess.Popen` of `o1p ...`: writes what later stages read."""

    def __init__(self, cmd, **_):
        args = cmd[cmd.index("megatron_o1p") + 1 :]
        self.args, lines = args, [f"o1p {args[0]}: done\n"]
        for flag in ("--out", "--save"):
            if args[0] in ("convert", "train") and flag in args:
                Path(args[args.index(flag) + 1]).mkdir(parents=True, exist_ok=True)
        if args[0] == "grade":
            Path(args[2]).mkdir(parents=True)
            pq.write_table(
                pa.table({"correct": [True, False]}), Path(args[2]) / "part-00000.parquet"
            )
        if args[0] == "build-dataset":
            out = Path(args[args.index("--out") + 1])
            out.parent.mkdir(parents=True)
            for name in (out.name, "sft.parquet", "dpo.parquet"):
                pq.write_table(pa.table({"x": list(range(40))}), out.with_name(name))
        if args[0] in ("analyze", "compare"):
            Path(args[args.index("--out") + 1]).mkdir(parents=True, exist_ok=True)
            lines.append(f"{args[0]} table\n")
        self.stdout = io.StringIO("".join(lines))

    def wait(self):
        return 0
