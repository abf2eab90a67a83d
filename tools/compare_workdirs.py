"""Compare two stage workdirs (e.g. two `o1p demo --size ci` runs) file by file: bytes first,
then, for parquet/JSON/text, content with absolute paths and wall-time fields set aside.

    python tools/compare_workdirs.py BEFORE_DIR AFTER_DIR

Used to check that a refactor leaves every stage output unchanged."""

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

TIME_KEYS = {"seconds", "tokens_per_s", "time_s", "grade_seconds", "wall_s"}
a, b = Path(sys.argv[1]), Path(sys.argv[2])


def files(root):
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()}


def strip(obj):
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in TIME_KEYS}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def norm_text(t, ra, rb):
    return t.replace(str(ra), "ROOT").replace(str(rb), "ROOT")


fa, fb = files(a), files(b)
print("only in before:", sorted(map(str, fa - fb))[:20])
print("only in after:", sorted(map(str, fb - fa))[:20])
same = diff_ok = 0
bad = []
for rel in sorted(fa & fb):
    x, y = (a / rel).read_bytes(), (b / rel).read_bytes()
    if x == y:
        same += 1
        continue
    s = str(rel)
    if s.endswith(".parquet"):
        ta, tb = pq.read_table(a / rel), pq.read_table(b / rel)
        cols = [c for c in ta.column_names if c not in TIME_KEYS]
        meta_a = {
            k: norm_text(v.decode(errors="replace"), a, b)
            for k, v in (ta.schema.metadata or {}).items()
        }
        meta_b = {
            k: norm_text(v.decode(errors="replace"), a, b)
            for k, v in (tb.schema.metadata or {}).items()
        }
        if (
            ta.column_names == tb.column_names
            and ta.select(cols).equals(tb.select(cols))
            and meta_a == meta_b
        ):
            diff_ok += 1
            continue
        bad.append((s, "parquet content differs" + (" (meta)" if meta_a != meta_b else "")))
    elif s.endswith(".json"):
        try:
            ja = json.loads(norm_text(x.decode(), a, b))
            jb = json.loads(norm_text(y.decode(), a, b))
        except Exception as e:
            bad.append((s, f"json parse {e}"))
            continue
        if strip(ja) == strip(jb):
            diff_ok += 1
            continue
        bad.append((s, "json differs"))
    else:
        try:
            if norm_text(x.decode(), a, b) == norm_text(y.decode(), a, b):
                diff_ok += 1
                continue
        except UnicodeDecodeError:
            pass
        bad.append((s, "bytes differ"))
print(f"identical bytes: {same}; equal up to paths/timings: {diff_ok}; different: {len(bad)}")
for s, why in bad:
    print("  DIFF", s, why)
