"""Structural checks: every command loads and has help; imports follow the data flow."""

from __future__ import annotations

import ast
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from typer.testing import CliRunner

from telemetry.cli import GROUP, build_app

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = sorted(ep.name for ep in entry_points(group=GROUP))


def test_commands_are_declared():
    assert {"collector", "simulate", "demo", "agent", "import", "analyze", "report", "dashboard"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_loads_and_has_help(name):
    ep = next(ep for ep in entry_points(group=GROUP) if ep.name == name)
    ep.load()  # a broken import fails here, not at a user's prompt
    result = CliRunner().invoke(build_app(), [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "unavailable" not in result.output
    assert len(result.output.strip().splitlines()) > 3


ALLOWED = {
    "telemetry": {"telemetry"},
    "agents": {"agents", "telemetry"},
    "analysis": {"analysis", "telemetry"},
    "dashboard": {"dashboard", "analysis", "telemetry"},
}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_follow_the_data_flow(package):
    ours = set(ALLOWED)
    bad = []
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in ours and top not in ALLOWED[package]:
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad
