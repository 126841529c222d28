"""The sampler contract: a tiny protocol, the registry by name (`telemetry.registry`), and a field-support ledger.

A sampler only gathers. `agents.tick` adds the shared timestamp, the node and group tags, timing and
error counts (the `agent` health measurement). A sampler declares the fields it can produce per
measurement (`fields`) and reports, per device and field, whether the hardware supports it
(`support()`): a field that is unsupported is absent from its rows (null), never 0.

```python
@register("hwmon")
class HwmonSampler(SamplerBase):
    fields = {"accel": ("temp_c", "power_w")}
    pci_vendor_ids = (0x1E52, 0x1ED2)   # what it claims: the agent, the config and hwmon read these from
    order = 30                          # the registry (`SAMPLERS`), never from hand-kept lists
    def read(self, ts: float) -> Rows: ...
```
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from agents.samplers import BUILTIN
from telemetry.errors import ConfigError
from telemetry.registry import Registry
from telemetry.schema import MEASUREMENTS

log = logging.getLogger(__name__)

Row = dict[str, Any]
"""One sample: tag and field values by name. ``time`` (epoch ns) only when the value has its own time
(events); otherwise the tick stamps it with the tick's timestamp."""

Rows = dict[str, list[Row]]
"""measurement name -> rows."""


CONFIG_TABLES = ("collector", "agent", "groups", "samplers", "tenants")


def config_located(message: str, where: str = "") -> str:
    """``message`` at a config location, as the TOML reader sees it: ``("bad", "samplers.nvml.devices")`` ->
    ``[samplers.nvml] devices: bad``; ``("bad", "samplers")`` -> ``[samplers] bad``."""
    parts = where.split(".") if where else []
    if not parts:
        return message
    if parts[0] not in CONFIG_TABLES:
        return f"{where}: {message}"
    split = 2 if parts[0] == "samplers" else 1
    section, key = ".".join(parts[:split]), ".".join(parts[split:])
    return f"[{section}] {key}: {message}" if key else f"[{section}] {message}"


def config_error(message: str, where: str = "") -> ConfigError:
    """A node-config error as one sentence: ``[section] key: message`` (`load_config` adds the file name)."""
    return ConfigError(config_located(message, where))


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
    vendor: ClassVar[str | None] = None
    """The ``vendor`` tag of this sampler's accelerators (None: not an accelerator sampler, or several)."""
    pci_vendor_ids: ClassVar[tuple[int, ...]] = ()
    """PCI vendor ids whose devices this sampler reports; other samplers (hwmon) leave them alone."""
    enabled_by_default: ClassVar[bool | Literal["auto"]] = "auto"
    """``enabled`` when the config does not say: ``"auto"`` starts it when it finds devices."""
    order: ClassVar[int] = 50
    """Build position, lower first (nvml feeds the tenants sampler, so it is built before it)."""

    def __init__(self) -> None:
        self._support: dict[str, dict[str, bool]] = {}
        self._unseen: dict[str, list[str]] = {}
        self._reads: dict[str, int] = {}

    @classmethod
    def from_context(cls, ctx: SamplerContext) -> SamplerBase:
        """Build from the node config. Override to read options; raise `ConfigError` on bad ones."""
        if ctx.options:
            raise config_error(
                f"sampler {cls.name!r} takes no options, got {sorted(ctx.options)}", f"samplers.{cls.name}"
            )
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


def _check_fields(name: str, cls: SamplerClass) -> None:
    """Refuse fields that the schema does not declare."""
    for meas, names in cls.fields.items():
        if meas not in MEASUREMENTS:
            raise ValueError(f"sampler {name!r}: unknown measurement {meas!r}")
        unknown = [n for n in names if n not in MEASUREMENTS[meas].field_index]
        if unknown:
            raise ValueError(f"sampler {name!r}: fields {unknown} are not in measurement {meas!r}")


SAMPLERS: Registry[SamplerClass] = Registry(
    "sampler", "agents.samplers", BUILTIN, check=_check_fields, error=lambda msg: config_error(msg, "samplers")
)
"""Every sampler class by name (its module's file stem); the built-ins are imported on first use."""

register = SAMPLERS.register
"""``@register("nvml")``: register a sampler class under its file stem; refuses a second sampler of the same
name and fields that the schema does not declare."""


def sampler_class(name: str) -> SamplerClass:
    """The sampler class named ``name``; `ConfigError` naming the known samplers otherwise."""
    return SAMPLERS.get(name)


def build_order() -> list[str]:
    """Sampler names in the order the agent builds them (`SamplerBase.order`, then registry order)."""
    names = SAMPLERS.names()
    return sorted(names, key=lambda n: (SAMPLERS.get(n).order, names.index(n)))


def pci_vendors_claimed(but: str = "") -> dict[int, str]:
    """PCI vendor id -> the sampler that reports that vendor's devices (every sampler but ``but``)."""
    return {vid: name for name, cls in SAMPLERS.items() if name != but for vid in cls.pci_vendor_ids}


def check_device_claims(claims: Mapping[str, list[str]]) -> None:
    """Refuse two samplers reporting the same device: one series, one source.

    ``claims`` maps sampler name -> its device names."""
    owner: dict[str, str] = {}
    for sampler, devices in claims.items():
        for dev in devices:
            if dev in owner:
                raise config_error(
                    f"device {dev!r} is reported by both sampler {owner[dev]!r} and {sampler!r}; "
                    "give one of them other device names (name_prefix) or exclude it (devices = [...])",
                    "samplers",
                )
            owner[dev] = sampler


def name_filter(opts: dict[str, Any], sampler: str) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """Pop the ``include`` and ``exclude`` options (regular expressions on a disk, interface or device name) of a
    sampler's table, compiled; a bad one is a `ConfigError` naming it."""
    out: list[re.Pattern[str] | None] = []
    for key in ("include", "exclude"):
        value = opts.pop(key, None)
        if value is None:
            out.append(None)
            continue
        if not isinstance(value, str):
            raise config_error(f"must be a regular expression (a string), not {value!r}", f"samplers.{sampler}.{key}")
        try:
            out.append(re.compile(value))
        except re.error as exc:
            raise config_error(f"bad regular expression {value!r}: {exc}", f"samplers.{sampler}.{key}") from None
    return out[0], out[1]


def selected(name: str, include: re.Pattern[str] | None, exclude: re.Pattern[str] | None) -> bool:
    """``name`` matches ``include`` (when given; searched) and not ``exclude``."""
    return (include is None or include.search(name) is not None) and (exclude is None or not exclude.search(name))


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


class KeptFile:
    """A procfs / sysfs / cgroupfs file kept open and read again from offset 0 (``os.pread``): one system call per
    read instead of open, read and close (the kernel makes such a file's text at each read from offset 0).

    Only a file the kernel generates is kept open: one with no disk blocks (``st_blocks == 0``: procfs, sysfs,
    cgroupfs, resctrl). A regular file (a test's fake tree, where a file may be replaced under the same name) is
    opened at each read, as `read_text` does. `read` raises `OSError` as ``open`` would (``FileNotFoundError``
    for a file that is not there); a kept file whose read fails (a device or process gone: ENODEV, ESRCH) is
    closed, and the next read opens the path again."""

    __slots__ = ("_fd", "_size", "path")

    MAX_KEPT = 512
    """Files kept open at most, process-wide (a host with thousands of tenant processes must not run the agent
    out of file descriptors: past this, a file is opened at each read, as before)."""
    kept_total = 0
    _count_lock = threading.Lock()

    def __init__(self, path: str | Path, size: int = 4096) -> None:
        self.path = str(path)
        self._fd: int | None = None
        self._size = size

    def read(self) -> bytes:
        fd = self._fd
        if fd is None:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                kept = os.fstat(fd).st_blocks == 0
                data = self._pread(fd)
            except OSError:
                os.close(fd)
                raise
            if kept:
                with KeptFile._count_lock:
                    kept = KeptFile.kept_total < KeptFile.MAX_KEPT
                    KeptFile.kept_total += kept
            if kept:
                self._fd = fd
            else:
                os.close(fd)
            return data
        try:
            return self._pread(fd)
        except OSError:
            self.close()
            raise

    def _pread(self, fd: int) -> bytes:
        while True:
            data = os.pread(fd, self._size, 0)
            if len(data) < self._size:
                return data
            self._size *= 4  # larger than the buffer (a /proc/stat of hundreds of cores): read it whole

    def text(self) -> str | None:
        """The file's text, None when absent or unreadable (like `read_text`, not stripped)."""
        try:
            return self.read().decode()
        except (OSError, UnicodeDecodeError):
            return None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with KeptFile._count_lock:
                KeptFile.kept_total -= 1
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        self.close()


class FileCache:
    """`KeptFile`s by path: the files a sampler reads at every tick, each opened once."""

    def __init__(self) -> None:
        self._files: dict[str, KeptFile] = {}

    def file(self, path: str | Path) -> KeptFile:
        key = path if isinstance(path, str) else str(path)
        f = self._files.get(key)
        if f is None:
            f = self._files[key] = KeptFile(key)
        return f

    def text(self, path: str | Path) -> str | None:
        """The file's text; None when absent or unreadable (as `read_text`, not stripped)."""
        return self.file(path).text()

    def keep_only(self, dirs: Iterable[str]) -> None:
        """Close the files that are not directly in one of ``dirs`` (what the sampler no longer reads)."""
        keep = set(dirs)
        for key in [k for k in self._files if os.path.dirname(k) not in keep]:
            self._files.pop(key).close()

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


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
