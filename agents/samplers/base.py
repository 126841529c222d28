"""The sampler contract: a tiny protocol, a registry by name, and a field-support ledger.

A sampler only gathers. `agents.tick` adds the shared timestamp, the node and group tags, timing and
error counts (the `agent` health measurement). A sampler declares the fields it can produce per
measurement (`fields`) and reports, per device and field, whether the hardware supports it
(`support()`): a field that is unsupported is absent from its rows (null), never 0.

```python
@register("hwmon")
class HwmonSampler(SamplerBase):
    fields = {"accel": ("temp_c", "power_w")}
    def read(self, ts: float) -> Rows: ...
```
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from telemetry.errors import ConfigError
from telemetry.schema import MEASUREMENTS

log = logging.getLogger(__name__)

Row = dict[str, Any]
"""One sample: tag and field values by name. ``time`` (epoch ns) only when the value has its own time
(events); otherwise the tick stamps it with the tick's timestamp."""

Rows = dict[str, list[Row]]
"""measurement name -> rows."""


@dataclass
class SamplerContext:
    """What the agent hands every sampler when it builds it."""

    options: Mapping[str, Any] = field(default_factory=dict)
    """The sampler's own table of the node config (``[samplers.<name>]``), cadence and enabled removed."""
    cadence_s: float = 1.0
    sysfs_root: Path = Path("/sys")
    proc_root: Path = Path("/proc")
    accel_process_memory: Callable[[], dict[int, int]] | None = None
    """host PID -> accelerator memory bytes (filled by the nvml sampler for the tenants sampler)."""


@runtime_checkable
class Sampler(Protocol):
    """What every sampler is."""

    name: ClassVar[str]
    fields: ClassVar[Mapping[str, tuple[str, ...]]]

    def read(self, ts: float) -> Rows:
        """Sample now. ``ts`` is the tick's wall-clock time (epoch seconds) for rate computations."""
        ...

    def devices(self) -> list[str]:
        """Device names (the ``device`` tag) this sampler reports; [] for node-level samplers."""
        ...

    def support(self) -> dict[str, dict[str, bool]]:
        """device (or ``""`` for node-level) -> field -> the hardware gives it."""
        ...

    def staleness_s(self, now: float) -> float | None:
        """Age of the oldest value read on a background thread (blocking readers), or None."""
        ...

    def close(self) -> None: ...


class SamplerBase:
    """Default parts of a sampler: the support ledger, no devices, no background age."""

    name: ClassVar[str] = ""
    fields: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def __init__(self) -> None:
        self._support: dict[str, dict[str, bool]] = {}
        self._unseen: dict[str, list[str]] = {}
        self._reads: dict[str, int] = {}

    @classmethod
    def from_context(cls, ctx: SamplerContext) -> SamplerBase:
        """Build from the node config. Override to read options; raise `ConfigError` on bad ones."""
        if ctx.options:
            raise ConfigError(f"sampler {cls.name!r} takes no options, got {sorted(ctx.options)}", f"samplers.{cls.name}")
        return cls()

    def mark(self, device: str, name: str, value: Any) -> Any:
        """Record whether ``name`` is supported on ``device`` (``value`` not None) and return ``value``.

        Once a field has been seen supported it stays supported (a transient read error is not
        'unsupported')."""
        dev = self._support.setdefault(device, {})
        if value is not None:
            dev[name] = True
        else:
            dev.setdefault(name, False)
        return value

    def mark_row(self, device: str, names: tuple[str, ...], row: Row) -> None:
        """`mark` every field of ``names`` from ``row``; cheap once the supported fields have been seen
        (only fields not yet seen supported are looked at)."""
        unseen = self._unseen.get(device)
        if unseen is None:
            unseen = self._unseen[device] = list(names)
            self._reads[device] = 0
        if not unseen:
            return
        self._reads[device] += 1
        if self._reads[device] > 10 and self._reads[device] % 10:
            return  # after the first reads, look again at still-unsupported fields every 10th read only
        dev = self._support.setdefault(device, {})
        still = []
        for name in unseen:
            if row.get(name) is not None:
                dev[name] = True
            else:
                dev.setdefault(name, False)
                still.append(name)
        self._unseen[device] = still

    def support(self) -> dict[str, dict[str, bool]]:
        return {d: dict(f) for d, f in self._support.items()}

    def devices(self) -> list[str]:
        return []

    def staleness_s(self, now: float) -> float | None:
        return None

    def close(self) -> None:
        return None


SamplerClass = type[SamplerBase]
SAMPLERS: dict[str, SamplerClass] = {}


def register(name: str) -> Callable[[SamplerClass], SamplerClass]:
    """Register a sampler class under ``name`` (its module's file stem).

    Refuses a second sampler of the same name and fields that the schema does not declare.
    """

    def deco(cls: SamplerClass) -> SamplerClass:
        if name in SAMPLERS and SAMPLERS[name] is not cls:
            raise ValueError(f"sampler {name!r} registered twice ({SAMPLERS[name].__module__} and {cls.__module__})")
        for meas, names in cls.fields.items():
            if meas not in MEASUREMENTS:
                raise ValueError(f"sampler {name!r}: unknown measurement {meas!r}")
            unknown = [n for n in names if n not in MEASUREMENTS[meas].field_index]
            if unknown:
                raise ValueError(f"sampler {name!r}: fields {unknown} are not in measurement {meas!r}")
        cls.name = name
        SAMPLERS[name] = cls
        return cls

    return deco


def sampler_class(name: str) -> SamplerClass:
    from agents.samplers import load_builtin

    load_builtin()
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ConfigError(f"unknown sampler {name!r}; known: {', '.join(sorted(SAMPLERS))}", "samplers") from None


def check_device_claims(claims: Mapping[str, list[str]]) -> None:
    """Refuse two samplers reporting the same device: one series, one source.

    ``claims`` maps sampler name -> its device names."""
    owner: dict[str, str] = {}
    for sampler, devices in claims.items():
        for dev in devices:
            if dev in owner:
                raise ConfigError(
                    f"device {dev!r} is reported by both sampler {owner[dev]!r} and {sampler!r}; "
                    "give one of them other device names (name_prefix) or exclude it (devices = [...])",
                    "samplers",
                )
            owner[dev] = sampler


# --- small readers shared by the sysfs samplers -------------------------------------------------


def read_text(path: Path) -> str | None:
    """A sysfs attribute as stripped text; None when missing or when the read fails (EIO/ENODATA while
    a device resets, permission): the value is absent, not 0."""
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def read_int(path: Path) -> int | None:
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text.split()[0], 0)
    except (ValueError, IndexError):
        return None


def scaled(value: int | float | None, factor: float) -> float | None:
    """``value * factor`` keeping None (absent) as None: unit conversion, e.g. µW -> W is 1e-6."""
    return None if value is None else value * factor


def counter_delta(prev: int | None, cur: int | None, bits: int | None = 64) -> int | None:
    """Increase of a cumulative counter between two reads.

    With ``bits`` set the counter wraps modulo 2**bits (tt-kmd flits are u32), so a smaller value
    means a wrap. ``bits=None``: the counter does not wrap, a smaller value means a reset (driver
    reload) and the delta is unknown (None)."""
    if prev is None or cur is None:
        return None
    if cur >= prev:
        return cur - prev
    if bits is None:
        return None
    return cur + (1 << bits) - prev
