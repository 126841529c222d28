"""`neighborscope alerts`: evaluate the alert rules once (the scheduler runs this every minute), list alerts,
acknowledge change points, silence alerts. Thin shells over `analysis.alerts.engine`."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import typer

from telemetry.config import parse_duration
from telemetry.errors import ConfigError

alerts = typer.Typer(
    name="alerts",
    help="Alert engine: thermal, noisy-neighbour (nightly and live), regression and stale-telemetry rules; "
    "Alertmanager / webhook / log.",
    add_completion=False,
    pretty_exceptions_enable=False,
    invoke_without_command=True,
)

CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    envvar="NEIGHBORSCOPE_ALERTS_CONFIG",
    help="alerts.toml (rules, notifiers, silences); default: built-in rules, log to stderr.",
)
STORE = typer.Option("neighborscope-data/store", "--store", envvar="NEIGHBORSCOPE_STORE", help="Store path or URL.")
STATE = typer.Option(
    None,
    "--state-dir",
    envvar="NEIGHBORSCOPE_ALERT_STATE_DIR",
    help="State directory (default: state_dir of the alerts table, else alerts/ beside the store).",
)


def _setup(config: Path | None, store: str, state_dir: Path | None):
    from analysis.alerts.engine import load_config, state_dir_for

    cfg = load_config(config)
    return cfg, state_dir or state_dir_for(cfg, store)


def _now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--now {text!r}: expected an ISO time such as 2026-03-02T09:00:00Z") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _night(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--night {text!r}: expected a date such as 2026-11-20") from None


@alerts.callback()
def main(
    ctx: typer.Context,
    config: Path | None = CONFIG,
    store: str = STORE,
    state_dir: Path | None = STATE,
    refresh: bool = typer.Option(
        False,
        "--refresh",
        help="Recompute the nightly findings (regressions, thermal, and who slows whom in the last day's benchmark "
        "runs: the NoisyNeighborDegradation rule's input) first; the scheduler does this after the nightly report. "
        "The live NoisyNeighbour rule analyses the serving data at every evaluation.",
    ),
    now: str | None = typer.Option(None, "--now", help="Evaluate as of this UTC time (ISO 8601; replays)."),
    as_json: bool = typer.Option(False, "--json", help="Print the transitions as JSON lines."),
) -> None:
    """Evaluate every alert rule once: update pending / firing / resolved, notify, save the state. Exit code 1 when
    a notifier could not be reached (the state is saved all the same), 2 for a bad config or option.

    Subcommands: list, ack, silence, expire. Example: neighborscope alerts --config alerts.toml --store data/store
    """
    if ctx.invoked_subcommand is not None:
        return
    from analysis.alerts.engine import evaluate_once, refresh_degradation, refresh_nightly
    from telemetry.store.factory import open_store

    cfg, sdir = _setup(config, store, state_dir)
    t = _now(now)
    st = open_store(store, create=False)  # reading: a store that does not exist is an error
    try:
        if refresh:
            counts = refresh_nightly(st, cfg, sdir, t)
            counts["degradation_rows"] = refresh_degradation(st, sdir, t)
            typer.echo(f"nightly findings refreshed: {counts}", err=True)
        res = evaluate_once(cfg, st, sdir, t)
    finally:
        st.close()
    for tr in res.transitions:
        line = {"fingerprint": tr.fingerprint, "from": tr.before, "to": tr.after, "alertname": tr.alert.name,
                "labels": dict(tr.alert.labels), "summary": tr.alert.annotations.get("summary", "")}  # fmt: skip
        typer.echo(
            json.dumps(line)
            if as_json
            else f"{tr.alert.name}\t{tr.before or '-'} -> {tr.after or 'dropped'}\t{line['summary']}"
        )
    firing = sum(1 for a in res.book.alerts.values() if a.state == "firing")
    typer.echo(
        f"{firing} firing, {len(res.book.alerts)} known; sent {res.sent or 'nothing'}"
        + (f"; notifier errors: {res.errors}" if res.errors else ""),
        err=True,
    )
    if res.errors:
        raise typer.Exit(1)


@alerts.command("list")
def list_alerts(
    config: Path | None = CONFIG,
    store: str = STORE,
    state_dir: Path | None = STATE,
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
) -> None:
    """List the alerts of the saved state (firing, pending, resolved) and the silences.

    Example: neighborscope alerts list --store data/store
    """
    from analysis.alerts.engine import current_alerts, read_state

    _, sdir = _setup(config, store, state_dir)
    frame = current_alerts(sdir)
    for row in frame.iter_rows(named=True):
        if as_json:
            typer.echo(json.dumps(row, default=str))
        else:
            typer.echo(
                f"{row['state']}\t{row['alertname']}\t{row['severity']}\t{row['node']}\t{row['summary']}"
                + ("\t(silenced)" if row["silenced"] else "")
            )
    for s in read_state(sdir).silences:
        typer.echo(f"silence {s.id}\t{s.matchers}\t{s.starts_at.isoformat()} .. {s.ends_at.isoformat()}\t{s.comment}")


@alerts.command("ack")
def ack(
    test: str = typer.Option(..., "--test", help="The history's test ('*' = any)."),
    group: str = typer.Option(..., "--group", help="The history's group ('*' = any)."),
    metric: str = typer.Option("*", "--metric", help="The metric ('*' = any)."),
    night: str = typer.Option(..., "--night", help="The change point's night (YYYY-MM-DD, ±1 day matches)."),
    node: str = typer.Option("", "--node", help="Only this node (default: any)."),
    by: str = typer.Option("", "--by", help="Who acknowledged it."),
    comment: str = typer.Option("", "--comment", help="Why (e.g. the commit that explains it)."),
    config: Path | None = CONFIG,
    store: str = STORE,
    state_dir: Path | None = STATE,
) -> None:
    """Acknowledge a change point: it stops alerting (after the next --refresh).

    Example: neighborscope alerts ack --test 'vllm|m|c8|1024/256|baseline' --group hive0 --night 2026-11-20
    """
    from analysis.alerts.engine import ACKS_FILE
    from analysis.history.regression import Acknowledgement, load_acks, save_acks

    _, sdir = _setup(config, store, state_dir)
    acks = load_acks(sdir / ACKS_FILE)
    acks.append(Acknowledgement(test=test, group=group, metric=metric, night=_night(night), node=node,
                                by=by, comment=comment))  # fmt: skip
    save_acks(sdir / ACKS_FILE, acks)
    typer.echo(f"acknowledged; {len(acks)} acknowledgement(s) in {sdir / ACKS_FILE}")


@alerts.command("silence")
def silence(
    matcher: list[str] = typer.Option(..., "--matcher", "-m", help="LABEL=VALUE or LABEL=~REGEX, repeatable."),
    duration: str = typer.Option("2h", "--duration", help="How long (e.g. 90m, 2h)."),
    comment: str = typer.Option("", "--comment", help="Why (e.g. planned interference experiment)."),
    by: str = typer.Option("", "--by", help="Who."),
    config: Path | None = CONFIG,
    store: str = STORE,
    state_dir: Path | None = STATE,
) -> None:
    """Silence alerts whose labels match (evaluated, not notified), e.g. during a planned experiment.

    Example: neighborscope alerts silence -m node=n1 -m alertname=~Noisy.* --duration 3h --comment "stress test"
    """
    from analysis.alerts.engine import add_silence

    matchers = {}
    for m in matcher:
        k, sep, v = m.partition("=")
        if not sep or not k:
            raise ConfigError(f"--matcher wants LABEL=VALUE or LABEL=~REGEX, got {m!r}")
        matchers[k] = v
    _, sdir = _setup(config, store, state_dir)
    try:
        secs = parse_duration(duration)
    except ValueError as exc:
        raise ConfigError(f"--duration: {exc}") from None
    now = datetime.now(UTC)
    sil = add_silence(sdir, matchers, now, now + timedelta(seconds=secs), comment, by)
    typer.echo(f"silence {sil.id} until {sil.ends_at.isoformat()}")


@alerts.command("expire")
def expire(
    silence_id: str = typer.Argument(..., help="The silence id (see `alerts list`)."),
    config: Path | None = CONFIG,
    store: str = STORE,
    state_dir: Path | None = STATE,
) -> None:
    """End a silence now.

    Example: neighborscope alerts expire 3f2a9c1b7d4e
    """
    from analysis.alerts.engine import expire_silence

    _, sdir = _setup(config, store, state_dir)
    if not expire_silence(sdir, silence_id):
        raise ConfigError(f"no silence {silence_id!r} in {sdir}")
    typer.echo(f"silence {silence_id} expired")
