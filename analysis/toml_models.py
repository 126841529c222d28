"""Read a TOML file into a pydantic model, with errors that name the file, the key and what was expected."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from telemetry.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def _key(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: ``source: key: what was expected (got value)``."""
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-after", "function-before"))
        got = err.get("input")
        shown = "" if err["type"] in ("missing",) or isinstance(got, dict) else f" (got {got!r})"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{source}: {_key(loc)}: {msg}{shown}")
    return "\n".join(lines)


def model_from_dict(model: type[M], data: dict[str, Any], source: str) -> M:
    """Validate ``data`` as ``model``; `ConfigError` naming ``source`` and the keys on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from None


def load_toml_model(path: Path | str, model: type[M]) -> M:
    """Parse the TOML file at ``path`` as ``model``; `ConfigError` for a missing file, bad TOML or a bad key."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return model_from_dict(model, data, str(p))
