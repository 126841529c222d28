"""Open a store from its URL: backends register a factory per URL scheme, `open_store` picks one.

The built-in backends register themselves when their module is imported (``@register_scheme("file")`` in
`telemetry.store.parquet`, the ``influx*`` schemes in `telemetry.store.influx`, ``vm``, ``vms`` and ``vmcluster``
in `telemetry.store.victoria`); `open_store` imports the one a URL names on first use, so a process that only
reads Parquet never imports the InfluxDB client. This module
imports no backend, and no backend imports another: the graph has no loop.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from telemetry.errors import StoreError

if TYPE_CHECKING:
    from telemetry.store.base import TelemetryStore

StoreFactory = Callable[..., "TelemetryStore"]
"""``factory(url)``, or ``factory(url, create=False)`` for a factory with a ``create`` keyword (a local store)."""
_FACTORIES: dict[str, StoreFactory] = {}
#: the module that registers each built-in scheme (imported on first use)
BUILTIN_SCHEMES = {
    "file": "telemetry.store.parquet",
    "influx": "telemetry.store.influx",
    "influxs": "telemetry.store.influx",
    "influx2": "telemetry.store.influx",
    "influx2s": "telemetry.store.influx",
    "vm": "telemetry.store.victoria",
    "vms": "telemetry.store.victoria",
    "vmcluster": "telemetry.store.victoria",
}


def register_scheme(*schemes: str) -> Callable[[StoreFactory], StoreFactory]:
    """Register a store factory for URL schemes (``file``, ``influx``, ...)."""

    def deco(factory: StoreFactory) -> StoreFactory:
        for scheme in schemes:
            _FACTORIES[scheme] = factory
        return factory

    return deco


def open_store(url: str | Path, *, create: bool = True) -> TelemetryStore:
    """Open a store from a URL: a plain path or ``file://PATH`` is the embedded Parquet store;
    ``influx://`` / ``influxs://`` / ``influx2://`` is InfluxDB (see `telemetry.store.influx`); ``vm://`` /
    ``vms://`` / ``vmcluster://`` is VictoriaMetrics (see `telemetry.store.victoria`).

    ``create=False`` (every reading command): a local store that does not exist is a `StoreError` ("store DIR
    does not exist; ...") instead of an empty one created on the spot. A factory that takes a ``create`` keyword
    is told; one that does not (a server-side store) is opened as usual.
    """
    text = str(url)
    scheme = text.split("://", 1)[0] if "://" in text else "file"
    if scheme not in _FACTORIES:
        _load_builtin(scheme)
    try:
        factory = _FACTORIES[scheme]
    except KeyError:
        raise StoreError(
            f"unknown store URL scheme {scheme!r} in {text!r}; use a path, file://PATH, influx://HOST:PORT/DB or "
            "vm://HOST:PORT"
        ) from None
    if not create and "create" in inspect.signature(factory).parameters:
        return factory(text, create=False)
    return factory(text)


def _load_builtin(scheme: str) -> None:
    module = BUILTIN_SCHEMES.get(scheme)
    if module is not None:
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(module)
