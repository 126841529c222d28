"""telemetry.console: what commands print is not wrapped at 80 columns when piped."""

import subprocess
import sys

from telemetry.console import PIPED_WIDTH, output_console


def test_a_piped_console_is_wide():
    # pytest captures stdout: not a terminal, as in a pipe or a CI log
    assert output_console().width == PIPED_WIDTH
    assert output_console(150, stderr=True).width == PIPED_WIDTH


def test_the_demo_prints_its_commands_unwrapped_when_piped(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "telemetry.cli",
            "simulate",
            "--scenario",
            "seed000",
            "--out",
            str(tmp_path / "sim"),
            "--phase-s",
            "30",
            "--num-prompts",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert all(len(line) <= PIPED_WIDTH for line in out.stdout.splitlines())
    assert any(len(line) > 80 for line in out.stdout.splitlines()), out.stdout  # a table wider than 80, unwrapped
