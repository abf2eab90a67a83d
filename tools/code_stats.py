"""Module sizes and the longest functions of a package tree.

python tools/code_stats.py megatron_o1p
"""

import ast
import sys
from pathlib import Path

root = Path(sys.argv[1])
mods, funcs = [], []
for p in sorted(root.rglob("*.py")):
    text = p.read_text()
    mods.append((len(text.splitlines()), str(p.relative_to(root.parent))))
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            funcs.append(
                (
                    node.end_lineno - node.lineno + 1,
                    f"{p.relative_to(root.parent)}:{node.lineno} {node.name}",
                )
            )
mods.sort(reverse=True)
funcs.sort(reverse=True)
print(
    "modules:",
    len(mods),
    "lines:",
    sum(m for m, _ in mods),
    "over 500:",
    sum(m > 500 for m, _ in mods),
)
for m in mods[:6]:
    print("  ", m)
print("functions over 70 lines:", sum(f > 70 for f, _ in funcs))
for f in funcs[:8]:
    print("  ", f)
