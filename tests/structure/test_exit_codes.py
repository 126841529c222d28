"""Every command follows the exit-code convention of docs/architecture.md ("Exit codes"): 0 done and good, 1 done but
the result is a failure, 2 a usage error or an input the command cannot use (one ``error:`` line, no traceback).

Each command runs through the real root command (`telemetry.cli.main`, what the ``neighborscope`` script calls),
once with an unknown option and once with a bad input."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from telemetry.cli import GROUP, main

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def _exit_code(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["neighborscope", *args])
    with pytest.raises(SystemExit) as exc:  # anything else escaping main() is a traceback: a bug
        main()
    code = exc.value.code
    return (0 if code is None else code if isinstance(code, int) else 1), capsys.readouterr().err


# one usage error per command (and per sub-command of the command groups)
USAGE = [
    ["collector", "--no-such-option"],
    ["simulate", "--no-such-option"],
    ["influx", "status", "--no-such-option"],
    ["influx", "init"],  # a missing argument
    ["agent", "--no-such-option"],
    ["scrape", "--no-such-option", "http://127.0.0.1:1/metrics"],
    ["scrape"],  # a missing argument
    ["run", "--no-such-option", "--", "true"],
    ["demo", "--no-such-option"],
    ["import", "bench", "--no-such-option"],
    ["import", "nothing"],  # an unknown sub-command
    ["analyze", "--no-such-option"],
    ["stress", "run", "--no-such-option"],
    ["report", "--no-such-option"],
    ["alerts", "--no-such-option"],
    ["alerts", "ack", "--no-such-option"],
    ["serve", "--no-such-option"],
    ["dashboard", "--no-such-option"],
    ["dashboard", "--refresh-s", "1"],  # out of the option's range
]


def test_every_command_has_a_usage_case() -> None:
    declared = {ep.name for ep in entry_points(group=GROUP)}
    assert declared <= {args[0] for args in USAGE}


@pytest.mark.parametrize("args", USAGE, ids=" ".join)
def test_a_usage_error_exits_2(args: list[str], monkeypatch, capsys) -> None:
    code, err = _exit_code(monkeypatch, capsys, args)
    assert code == 2, err
    assert "Traceback" not in err


# one bad input (or more) per command; {tmp} is the test's directory (bad.toml, unknown-key.toml, garbage.json)
BAD_INPUT = [
    ["collector", "--config", "{tmp}/missing.toml", "--store", "{tmp}/store"],
    ["collector", "--config", "{tmp}/bad.toml", "--store", "{tmp}/store"],
    ["simulate", "--scenario", "nope", "--out", "{tmp}/sim"],
    ["influx", "status", "http://not-influx"],
    ["influx", "init", "influx://127.0.0.1:8086/db?nonsense=1"],
    ["agent", "--config", "{tmp}/missing.toml"],
    ["scrape", "http://127.0.0.1:9/metrics", "--interval-s", "0.1", "--timeout-s", "1"],  # nothing listens there
    ["scrape", "not-a-url"],
    ["run", "--group", "g", "--phase", "p", "--config", "{tmp}/bad.toml", "--", "true"],
    ["demo", "--dir", "{tmp}/demo", "--scenario", "nope"],
    ["import", "bench", "{tmp}/garbage.json", "--store", "{tmp}/store"],
    ["import", "bench", "{tmp}/missing.json", "--store", "{tmp}/store"],
    ["analyze", "--victim", "hive0", "--bench", "{tmp}/garbage.json"],
    ["analyze", "--victim", "hive0", "--store", "{tmp}/store", "--start", "not-a-time"],
    ["stress", "run", "{tmp}/unknown-key.toml"],
    ["stress", "run", "{tmp}/missing.toml"],
    ["report", "--store", "{tmp}/store", "--since", "bogus", "--out", "{tmp}/report"],
    ["alerts", "--config", "{tmp}/bad.toml", "--store", "{tmp}/store"],
    ["alerts", "--store", "{tmp}/store", "--now", "not-a-time"],
    ["alerts", "ack", "--test", "t", "--group", "g", "--night", "not-a-date", "--store", "{tmp}/store"],
    ["alerts", "silence", "-m", "node", "--store", "{tmp}/store"],
    ["serve", "--store", "{tmp}/store", "--no-collector", "--timezone", "Mars/Base"],
    ["serve", "--store", "{tmp}/store", "--no-collector", "--report-cron", "every night"],
    ["serve", "--store", "{tmp}/store", "--no-collector", "--alerts-config", "{tmp}/missing.toml"],
    ["dashboard", "--theme", "purple"],
    ["dashboard", "--port", "99999"],
]


def test_every_command_has_a_bad_input_case() -> None:
    declared = {ep.name for ep in entry_points(group=GROUP)}
    assert declared <= {args[0] for args in BAD_INPUT}


@pytest.mark.parametrize("template", BAD_INPUT, ids=" ".join)
def test_a_bad_input_exits_2_with_one_error_line(template: list[str], tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "bad.toml").write_text("x = [\n")
    (tmp_path / "unknown-key.toml").write_text('[plan]\nname = "x"\nbogus = 1\n')
    (tmp_path / "garbage.json").write_text("garbage\n")
    monkeypatch.chdir(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in template]
    code, err = _exit_code(monkeypatch, capsys, args)
    assert code == 2, f"{args}: {err}"
    assert "Traceback" not in err
    assert err.lstrip().startswith(("error:", "Usage:", "╭")), err  # ours, or click's own for a bad option value


@pytest.mark.slow
def test_a_command_that_ran_but_failed_exits_1(tmp_path: Path, monkeypatch, capsys) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[plan]\nname = "t"\nnode = "n1"\nrepetitions = 1\n'
        '[victim]\ngroup = "hive0"\ncommand = "exit 4"\nshell = true\n'
        f'[[cotenant]]\ngroup = "idle"\ncommand = ["{PY}", "-c", "pass"]\n'
        '[[phase]]\nname = "baseline"\n'
    )
    monkeypatch.chdir(tmp_path)
    args = ["stress", "run", str(plan), "--store", str(tmp_path / "store"), "--workdir", str(tmp_path / "w")]
    code, err = _exit_code(monkeypatch, capsys, args)
    assert code == 1, err
    assert "1 failure(s)" in err
