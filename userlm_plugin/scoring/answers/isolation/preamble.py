"""Lost in Conversation's import preamble, as data (LiC `tasks/code/eval_code.py` at commit ba6b9a2, taken from
LiveCodeBench's evaluator): every call-based solution runs after these imports, so an answer that uses `List`,
`Counter`, `heapq`, `inf`, ... without importing them works as it does in LiC.

Order matters and is LiC's: the star imports (later ones shadow earlier names; `builtins` restores the
builtins that `io`/`sys`/... shadowed, `typing` comes last), then the plain module imports (so e.g. `datetime`
names the module, not the class), then the recursion limit.
"""

from __future__ import annotations

STAR_IMPORTS = (
    "string",
    "re",
    "datetime",
    "collections",
    "heapq",
    "bisect",
    "copy",
    "math",
    "random",
    "statistics",
    "itertools",
    "functools",
    "operator",
    "io",
    "sys",
    "json",
    "builtins",
    "typing",
)
MODULE_IMPORTS = STAR_IMPORTS[:16]
"""`import string`, ... `import json` (not builtins or typing)."""
RECURSION_LIMIT = 50000


def preamble_source():
    """The preamble as Python source, run before the candidate's program."""
    lines = [f"from {name} import *" for name in STAR_IMPORTS]
    lines += [f"import {name}" for name in MODULE_IMPORTS]
    lines.append(f"sys.setrecursionlimit({RECURSION_LIMIT})")
    return "\n".join(lines) + "\n"
