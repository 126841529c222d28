"""The root command. It mounts the commands each package declares under the entry-point group
``neighborscope.commands`` (pyproject.toml), so the ground floor never imports upward.

An entry point is either a Typer app (mounted as a command group) or a function (mounted as a command).
Errors of type `NeighborscopeError` become one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from typing import Any

import typer

from telemetry import __version__
from telemetry.errors import NeighborscopeError

GROUP = "neighborscope.commands"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"neighborscope {__version__}")
        raise typer.Exit()


def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """neighborscope: noisy-neighbour telemetry, analysis and reports for dense inference nodes."""


def build_app(only: str | None = None) -> typer.Typer:
    """The root app with every declared command mounted, or only command ``only`` (fast start-up:
    a command's heavy imports are paid only when that command runs)."""
    app = typer.Typer(
        name="neighborscope",
        help="Find out whether co-tenants of a dense inference node slow each other down, by how much, and who is to blame.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(root)
    mount(app, only)
    return app


def _broken(name: str, error: Exception) -> Any:
    def command() -> None:
        typer.echo(f"neighborscope {name}: this command failed to load: {error}", err=True)
        raise typer.Exit(3)

    command.__doc__ = f"(unavailable: {error})"
    return command


def mount(target: typer.Typer, only: str | None = None) -> None:
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if only is not None and ep.name != only:
            continue
        try:
            obj = ep.load()
        except Exception as exc:
            target.command(ep.name)(_broken(ep.name, exc))
            continue
        if isinstance(obj, typer.Typer):
            target.add_typer(obj, name=ep.name)
        else:
            target.command(ep.name)(obj)


def main() -> None:
    names = {ep.name for ep in entry_points(group=GROUP)}
    first = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    app = build_app(first if first in names else None)
    try:
        app(prog_name="neighborscope", standalone_mode=True)
    except NeighborscopeError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


def __getattr__(name: str) -> Any:
    """``telemetry.cli.app``: the full root app, built on first use (tests and `python -m` embedding)."""
    if name == "app":
        return build_app()
    raise AttributeError(name)


if __name__ == "__main__":
    main()
