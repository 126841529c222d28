"""One plugin registry: plugins registered by name with a decorator, found by name or by content.

Samplers (`agents.samplers`), benchmark parsers (`analysis.ingest`) and telemetry file formats
(`analysis.ingest.telemetry_import`) are each a ``Registry``. A plugin is one module registered under its file
stem; the registry imports its package's built-in modules the first time it is asked (one line per plugin in
``modules``), so the ground floor never imports upward::

    PARSERS: Registry[BenchParser] = Registry("benchmark format", "analysis.ingest", ("aiperf", "vllm"),
                                              build=lambda cls: cls(), error=BenchFormatError)

    @PARSERS.register("vllm")
    class VllmParser: ...

    PARSERS.get("vllm"); PARSERS.names(); PARSERS.first(lambda p: p.sniff(head))
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound=type)


class Registry(Generic[T]):
    """Plugins of one kind by name, in the order of ``modules`` (then any registered from elsewhere).

    ``kind`` names the plugins in messages ("sampler", "benchmark format"). ``package`` + ``modules``: the
    built-in plugin modules, imported on first use. ``build`` turns a registered class into the stored item
    (default: the class itself). ``check(name, cls)`` may refuse a class by raising ``ValueError``.
    ``error(message)`` is the exception for an unknown name (default `LookupError`).
    """

    def __init__(
        self,
        kind: str,
        package: str = "",
        modules: Sequence[str] = (),
        *,
        build: Callable[[Any], T] | None = None,
        check: Callable[[str, Any], None] | None = None,
        error: Callable[[str], Exception] = LookupError,
    ) -> None:
        self.kind = kind
        self.package = package
        self.modules = tuple(modules)
        self._build = build
        self._check = check
        self._error = error
        self._items: dict[str, T] = {}
        self._classes: dict[str, type] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[C], C]:
        """Class decorator: register under ``name`` (its module's file stem) and set ``cls.name``.

        Refuses a second class under the same name."""

        def deco(cls: C) -> C:
            known = self._classes.get(name)
            if known is not None and known is not cls:
                raise ValueError(f"{self.kind} {name!r} registered twice ({known.__module__} and {cls.__module__})")
            if self._check is not None:
                self._check(name, cls)
            cls.name = name  # type: ignore[attr-defined]
            self._classes[name] = cls
            self._items[name] = self._build(cls) if self._build is not None else cls
            return cls

        return deco

    def load(self) -> None:
        """Import the built-in plugin modules (each registers itself); once."""
        if self._loaded:
            return
        self._loaded = True
        for module in self.modules:
            importlib.import_module(f"{self.package}.{module}" if self.package else module)

    def names(self) -> list[str]:
        """Registered names: built-ins in ``modules`` order, then the others in registration order."""
        self.load()
        builtin = [m for m in self.modules if m in self._items]
        return builtin + [n for n in self._items if n not in builtin]

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self._items[name]

    def values(self) -> Iterator[T]:
        for _, item in self.items():
            yield item

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._items

    def __len__(self) -> int:
        self.load()
        return len(self._items)

    def get(self, name: str) -> T:
        """The plugin named ``name`` (``-`` read as ``_``); ``error`` naming the known names when there is none."""
        self.load()
        item = self._items.get(name, self._items.get(name.replace("-", "_")))
        if item is None:
            raise self._error(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return item

    def first(self, accepts: Callable[[T], bool]) -> T | None:
        """The first plugin (in `names` order) that ``accepts``: content detection, e.g. ``p.sniff(head)``."""
        for item in self.values():
            if accepts(item):
                return item
        return None
