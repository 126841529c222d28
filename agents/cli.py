"""`neighborscope agent` and `neighborscope run`: thin shells over `agents.agent` and `agents.runner`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer

from agents.agent import Agent, build_samplers, summary_line
from agents.config import AgentConfig, effective_toml, init_config_toml, load_config
from telemetry.errors import ConfigError

T = TypeVar("T")


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def support_comments(built: list) -> str:
    """Two reads of every sampler (rates need two), then its per-device field support as TOML comments."""
    import time

    lines = ["", "# Field support after two reads (unsupported fields are absent, never 0):"]
    for b in built:
        try:
            b.sampler.read(time.time())
            time.sleep(0.25)
            b.sampler.read(time.time())
        except Exception as exc:
            lines.append(f"# {b.sampler.name}: read failed: {type(exc).__name__}: {exc}")
            continue
        for device, fields in sorted(b.sampler.support().items()):
            missing = sorted(f for f, ok in fields.items() if not ok)
            label = device or "(node)"
            lines.append(
                f"# {b.sampler.name} {label}: {sum(fields.values())} fields supported; "
                f"unsupported: {', '.join(missing) if missing else 'none'}"
            )
    return "\n".join(lines)


def agent(
    config: Path | None = typer.Option(
        None, "--config", "-c", envvar="NEIGHBORSCOPE_AGENT_CONFIG", help="Node config (TOML)."
    ),
    print_config: bool = typer.Option(
        False, "--print-config", help="Print the effective config (defaults, detected devices) and exit."
    ),
    init_config: bool = typer.Option(
        False,
        "--init-config",
        help="Write a commented config for this host (detected devices, the --collector "
        "URL) to the --config file (never overwritten), or print it; then exit.",
    ),
    collector: str | None = typer.Option(
        None, "--collector", help="Collector URL (overrides the config's collector.url)."
    ),
    token: str | None = typer.Option(
        None, "--token", envvar="NEIGHBORSCOPE_TOKEN", help="Node token (overrides the config's collector token)."
    ),
    spool_dir: Path | None = typer.Option(
        None, "--spool-dir", help="Spool directory (overrides the config's agent.spool_dir)."
    ),
    log_level: str = typer.Option("info", "--log-level", help="debug | info | warning | error"),
) -> None:
    """Run the per-node agent: sample accelerators, host and co-tenants on one clock and stream them to
    the collector (spooling to disk while it is unreachable). SIGTERM flushes and exits.

    Example: neighborscope agent --config /etc/neighborscope/agent.toml
    """
    _logging(log_level)
    if collector:
        _check_url(collector)
    if init_config:
        _init_config(config, collector)
        return
    cfg = load_config(config)
    if collector:
        cfg.collector_url = collector
    if token:
        cfg.token = token
    if spool_dir is not None:
        cfg.spool_dir = spool_dir
    built = _located(config, lambda: build_samplers(cfg))
    if print_config:
        detected = {b.sampler.name: b.sampler.devices() for b in built}
        support = support_comments(built)
        for b in built:
            b.sampler.close()
        typer.echo(effective_toml(cfg, detected).rstrip("\n"))
        typer.echo(support)
        return
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        logging.getLogger("agents").info("signal %d: flushing and stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    summary = _located(config, lambda: Agent(cfg, built)).run(stop)
    typer.echo(summary_line(summary), err=True)


def _check_url(url: str) -> None:
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--collector: the collector URL must look like http(s)://HOST[:PORT], not {url!r}")


def _located(config: Path | None, build: Callable[[], T]) -> T:
    """Run ``build``; a config error it raises names the config file (samplers see only their own table)."""
    try:
        return build()
    except ConfigError as exc:
        if config is None or str(exc).startswith(f"{config}:"):
            raise
        raise ConfigError(f"{config}: {exc}") from None


def _init_config(path: Path | None, collector: str | None) -> None:
    """Detect this host's devices with the default config, then write (or print) the commented config."""
    cfg: AgentConfig = load_config(None)
    if path is not None and path.exists():
        raise ConfigError(
            f"{path}: already exists, not overwritten (move it away, or leave out --config to print the new config)"
        )
    built = build_samplers(cfg)
    detected = {b.sampler.name: b.sampler.devices() for b in built}
    for b in built:
        b.sampler.close()
    text = init_config_toml(cfg.node, collector, detected)
    if path is None:
        typer.echo(text, nl=False)
        return
    try:
        path.write_text(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None
    typer.echo(f"wrote {path}; check it with: neighborscope agent --config {path} --print-config", err=True)


def run(
    command: list[str] = typer.Argument(..., help="The benchmark command, after --."),
    group: str = typer.Option(..., "--group", "-g", help="The group the benchmark runs on (e.g. hive0)."),
    phase: str = typer.Option(..., "--phase", "-p", help="Phase name (baseline, contended, ...)."),
    run_id: str | None = typer.Option(None, "--run-id", help="Run id (default: <group>-<phase>-<UTC time>)."),
    tool: str | None = typer.Option(None, "--tool", help="Benchmark tool name (sglang, vllm, ...)."),
    result: Path | None = typer.Option(None, "--result", help="Result file the benchmark writes (imported after)."),
    store: str | None = typer.Option(
        None, "--store", envvar="NEIGHBORSCOPE_STORE", help="Store the importer writes the result into."
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", envvar="NEIGHBORSCOPE_AGENT_CONFIG", help="Node config (collector, token, spool)."
    ),
    collector: str | None = typer.Option(None, "--collector", help="Collector URL (overrides the config)."),
    token: str | None = typer.Option(None, "--token", envvar="NEIGHBORSCOPE_TOKEN", help="Node token."),
) -> None:
    """Run a benchmark between two run_events (start, end: wall clock and monotonic), streaming its
    output through, then hand its result file to `neighborscope import bench`. Exits with the
    benchmark's exit code.

    Example: neighborscope run --group hive0 --phase baseline --result out.jsonl -- python bench.py
    """
    from agents.runner import run_benchmark

    _logging("warning")
    cfg = load_config(config)
    if collector:
        cfg.collector_url = collector
    if token:
        cfg.token = token
    code = run_benchmark(cfg, command, group=group, phase=phase, run_id=run_id, tool=tool, result=result, store=store)
    raise typer.Exit(code)
