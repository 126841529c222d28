"""The one way a config file is read: TOML -> pydantic model, errors that name the file, the key and the problem.

Every config file (collector settings, agent config, alerts.toml, stress plans, the ``[regression]`` table) is a
pydantic model loaded here::

    settings = load_toml_model("collector.toml", CollectorSettings)
    plan = load_toml_model("plan.toml", StressPlan)
    regression = load_toml_model("alerts.toml", RegressionConfig, section="regression")

A bad file raises `ConfigError` with one line per problem, ``<file>: [<section>] <key.path>: <problem>``, e.g.::

    alerts.toml: notifier[0].kind: Input should be 'alertmanager', 'webhook' or 'log' (got 'pager')
    collector.toml: [collector] max_body_bytes: Input should be greater than or equal to 1024 (got 5)

never a Python tuple or pydantic's raw dump. Commands print it and exit 2 (docs/architecture.md, "Exit codes").
Durations in config files (``timeout = "5m"``, ``for = "1h30m"`` or a number of seconds) are `Duration` fields.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ValidationError

from telemetry.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w))+\s*$")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds) or a Prometheus duration string (``90s``, ``5m``, ``1h30m``)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '5m' or a number of seconds, got {value!r}")
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"a duration must be a finite number >= 0, got {value!r}")
        return float(value)
    if isinstance(value, str) and _DURATION.match(value):
        return sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(value))
    raise ValueError(f"expected a duration such as '5m', '90s', '1h30m' or a number of seconds, got {value!r}")


#: a config field in seconds, written as a number or a duration string (``timeout = "5m"``)
Duration = Annotated[float, BeforeValidator(parse_duration)]

_WRAPPERS = ("function-after", "function-before", "function-wrap", "function-plain")


def key_path(loc: tuple[Any, ...]) -> str:
    """pydantic's error location as a TOML key path: ``("notifier", 0, "url")`` -> ``notifier[0].url``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in _WRAPPERS:
            out += f".{part}" if out else str(part)
    return out


def describe_validation_error(exc: ValidationError, source: str, section: str | None = None) -> str:
    """One line per problem: ``source: [section] key: what was expected (got value)``."""
    prefix = f"{source}: [{section}] " if section else f"{source}: "
    lines = []
    for err in exc.errors():
        got = err.get("input")
        shown = "" if err["type"] == "missing" or isinstance(got, (dict, list)) else f" (got {got!r})"
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            msg = "unknown key"
        where = key_path(tuple(err["loc"]))
        lines.append(f"{prefix}{where}: {msg}{shown}" if where else f"{prefix}{msg}{shown}".rstrip())
    return "\n".join(lines)


def model_from_dict(model: type[M], data: Mapping[str, Any], source: str, section: str | None = None) -> M:
    """Validate ``data`` (an already-parsed table) as ``model``; `ConfigError` naming ``source`` and the keys."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source, section)) from None


def read_toml(path: Path | str) -> dict[str, Any]:
    """The parsed TOML document at ``path``; `ConfigError` for a missing or unreadable file or bad TOML."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, not a config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None


def load_toml_model(path: Path | str, model: type[M], section: str | None = None) -> M:
    """Read the TOML file at ``path`` and validate it (or its ``[section]`` table) as ``model``.

    ``section``: validate only that top-level table (absent: the model's defaults); the error lines then read
    ``<file>: [<section>] <key>: <problem>``. Raises `ConfigError`, one line per problem, for a missing file,
    bad TOML, an unknown key or a bad value. To add values that do not come from the file (command-line
    options), read the document with `read_toml`, merge, then call `model_from_dict`.
    """
    data = read_toml(path)
    if section is not None:
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section}]: must be a table, not {type(table).__name__}")
        data = table
    return model_from_dict(model, data, str(path), section)
