"""Modules imported on first use: an agent that only encodes rows to JSON never pays for polars or numpy.

``pl = lazy_module("polars")`` binds a stand-in; the first attribute read imports the real module and copies its
namespace into the stand-in, so later reads are plain attribute lookups (no per-call cost on hot paths).
`loaded` says whether a module is imported without importing it (``isinstance(x, pl.DataFrame)`` would).
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any


class _LazyModule(ModuleType):
    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        real = importlib.import_module(self.__name__)
        self.__dict__.update({k: v for k, v in real.__dict__.items() if k not in ("__name__", "__spec__")})
        return getattr(real, attr)


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it on the first attribute read."""
    if name in sys.modules:
        return sys.modules[name]
    return _LazyModule(name)


def loaded(name: str) -> bool:
    """Whether module ``name`` has been imported (by anyone)."""
    return name in sys.modules
