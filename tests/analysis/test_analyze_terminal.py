"""Issue 18 item 7: what `neighborscope analyze` prints on a terminal or into a pipe. The verdict words are
explained under the phase table, and piped output (a file, `| less`, a CI log) is not wrapped at 80 columns: a
note with a command in it stays on one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SEED000 = Path(__file__).parents[1] / "fixtures" / "bench" / "vllm" / "seed000_inferencex_sglang_mi300x_blog.txt"
BLOCKS = "baseline/hive0,dual/hive0,dual/hive1,stress/hive0,stress/hive1"


def _piped(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    res = subprocess.run(
        [sys.executable, "-m", "telemetry.cli", "analyze", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_the_verdict_words_are_explained_under_the_phase_table() -> None:
    out = _piped("--bench", str(SEED000), "--blocks", BLOCKS, "--victim", "hive0")
    legend = next(line for line in out.splitlines() if line.startswith("verdicts:"))
    for word in ("degraded", "improved", "equivalent", "inconclusive"):
        assert word in legend
    assert out.index("verdicts:") > out.index("stress vs baseline")


def test_piped_output_is_not_wrapped_at_80_columns() -> None:
    out = _piped("--bench", str(SEED000), "--blocks", BLOCKS, "--victim", "hive0")
    lines = out.splitlines()
    assert max(len(line) for line in lines) > 80
    notes = [line for line in lines if line.startswith("note: ")]
    assert any("rerun with K >= 2 runs per phase or per-request output for intervals" in n for n in notes)
    # every note is one line: the line after a note is another note, the end, or blank, never its continuation
    for i, line in enumerate(lines):
        if line.startswith("note: ") and i + 1 < len(lines):
            assert lines[i + 1].startswith(("note: ", "unreadable: ")) or not lines[i + 1].strip(), lines[i + 1]
    header = next(line for line in lines if "phase" in line and "verdict" in line)
    assert "verdict" in header and len(header) <= 200
