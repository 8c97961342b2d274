"""Code-health rules that ruff does not check, run by scripts/test.

Why: issue 9 split every long function and removed every function-level import that hid
an import cycle (marked ``# … imports this``); this keeps both from coming back.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

MAX_LINES = 80
HIDDEN_CYCLE = re.compile(r"import .*  # .*imports this")


def problems(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_LINES:
                    found.append(f"{path}:{node.lineno}: {node.name} is {length} lines (at most {MAX_LINES})")
        for number, line in enumerate(text.splitlines(), 1):
            if HIDDEN_CYCLE.search(line):
                found.append(f"{path}:{number}: a function-level import hides a cycle: {line.strip()}")
    return found


if __name__ == "__main__":
    listed = problems(Path(sys.argv[1] if len(sys.argv) > 1 else "moorage"))
    print("\n".join(listed) or "functions: none over 80 lines, no hidden import cycles")
    sys.exit(1 if listed else 0)
