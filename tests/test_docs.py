"""The code in docs/ runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def test_encoder_example_in_docs_gives_3_by_5() -> None:
    (block,) = python_blocks(DOCS / "encoders.md")
    res = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["lstm.v1 (3, 5)", "rnn.v1 (3, 5)"]
