"""The parser contract, the registry and content-based detection.

A parser is one module per tool (``analysis/ingest/<tool>.py``) holding one class registered under the module's
name. It recognises its files by content (``sniff``), never by file name, and turns a file's text into
`ParsedRun` values (``parse``), raising `BenchFormatError` with the file, the line and what was expected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from analysis.ingest.errors import BenchFormatError
from analysis.ingest.model import ParsedRun
from telemetry.registry import Registry

try:  # optional: 3-4x faster JSON decoding of detailed files; the standard library gives the same values
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None

# The built-in parsers, one line per plugin, in detection order: the more specific formats first (InferenceX
# results are vLLM JSON with extra keys).
BUILTIN = ("aiperf", "llama_benchy", "inferencex", "sglang", "vllm")

SNIFF_CHARS = 65536


@runtime_checkable
class BenchParser(Protocol):
    """One tool's outputs, in all the variants it wrote over its versions."""

    name: ClassVar[str]

    def sniff(self, head: str) -> bool:
        """True when ``head`` (the first ~64 kB of a file) looks like this tool's output."""
        ...

    def parse(self, text: str, source: str) -> list[ParsedRun]:
        """Every run in ``text``; raises `BenchFormatError` (source, line, what was expected) on bad input."""
        ...


PARSERS: Registry[BenchParser] = Registry(
    "benchmark format", "analysis.ingest", BUILTIN, build=lambda cls: cls(), error=BenchFormatError
)
"""Every parser by name (its module's file stem), in detection order; the built-ins are imported on first use."""

register = PARSERS.register
"""``@register("vllm")``: register a parser class under its module's file name (one instance). Refuses duplicates."""


def detect(text: str, source: str = "") -> BenchParser:
    """The parser whose format ``text`` is in; `BenchFormatError` naming the formats tried when none fits."""
    head = text[:SNIFF_CHARS]
    parser = PARSERS.first(lambda p: p.sniff(head))
    if parser is not None:
        return parser
    first = next((i + 1 for i, line in enumerate(text.splitlines()) if line.strip()), 0)
    shown = text.strip().splitlines()[0][:80] if text.strip() else "(empty file)"
    raise BenchFormatError(
        f"matches no known benchmark format (tried {', '.join(PARSERS.names())}); it starts with {shown!r}. Expected SGLang "
        "bench_serving output, vLLM benchmark JSON / printed summary, llama-benchy results or progress JSONL, "
        "AIPerf profile_export.jsonl, genai-perf profile_export.json or an InferenceX result",
        source,
        first,
    )


def parser_named(name: str) -> BenchParser:
    """The parser named ``name`` (``-`` read as ``_``); `BenchFormatError` naming the known formats otherwise."""
    return PARSERS.get(name)


def parse_text(text: str, source: str = "<text>", fmt: str | None = None) -> list[ParsedRun]:
    """Parse ``text`` with the named format, else the detected one."""
    parser = parser_named(fmt) if fmt else detect(text, source)
    runs = parser.parse(text, source)
    if not runs:
        raise BenchFormatError(f"no benchmark run found: expected at least one {parser.name} result", source)
    return runs


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BenchFormatError(f"cannot read: {exc.strerror or exc}", str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BenchFormatError(
            f"not UTF-8 text (byte {exc.start}): expected a text benchmark file", str(path), line
        ) from None


def parse_file(path: str | Path, fmt: str | None = None) -> list[ParsedRun]:
    path = Path(path)
    return parse_text(read_text(path), str(path), fmt)


# ---------------------------------------------------------------------------------------------------------------
# JSON helpers shared by the JSON-writing tools


def json_documents(text: str, source: str) -> Iterator[tuple[int, Any]]:
    """Yield (line, value) for a JSON document, JSON Lines, or concatenated JSON values (``--append-result``).

    Accepts the ``Infinity`` / ``NaN`` literals Python's json module writes. A truncated or corrupt value raises
    `BenchFormatError` at its line.
    """
    fast = _fast_documents(text)
    if fast is not None:
        yield from fast
        return
    decoder = json.JSONDecoder()
    idx, n = 0, len(text)
    line = 1
    while True:
        start = idx
        while idx < n and text[idx] in " \t\r\n":
            idx += 1
        line += text.count("\n", start, idx)
        if idx >= n:
            return
        try:
            value, end = decoder.raw_decode(text, idx)
        except json.JSONDecodeError as exc:
            raise BenchFormatError(
                f"invalid or truncated JSON ({exc.msg}, column {exc.colno})", source, exc.lineno
            ) from None
        except RecursionError:
            raise BenchFormatError("JSON nested too deeply", source, line) from None
        yield line, value
        line += text.count("\n", idx, end)
        idx = end


_NONFINITE = [(f'"{sep}{lit}', f'"{sep}"{lit}"') for lit in ("-Infinity", "Infinity", "NaN") for sep in (": ", ":")]


def _fast_documents(text: str) -> list[tuple[int, Any]] | None:
    """orjson over the whole text, else line by line (JSON Lines); None (use the standard library, which reports
    errors precisely and accepts Infinity / NaN and concatenated multi-line values) when either fails."""
    if orjson is None:
        return None
    if "Infinity" in text or "NaN" in text:  # Python's non-standard literals (SGLang's request_rate): as strings
        for old, new in _NONFINITE:
            text = text.replace(old, new)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    else:
        return [(text[: len(text) - len(text.lstrip())].count("\n") + 1, value)]
    out = []
    for i, line in enumerate(text.split("\n")):
        if line.strip():
            try:
                out.append((i + 1, orjson.loads(line)))
            except orjson.JSONDecodeError:
                return None
    return out


def looks_like_json(head: str) -> bool:
    stripped = head.lstrip()
    return stripped.startswith("{") or stripped.startswith("[")


def number(value: Any, what: str, source: str, line: int, *, allow_none: bool = True) -> float | None:
    """``value`` as a float (``"inf"`` strings too); `BenchFormatError` naming ``what`` otherwise."""
    if value is None:
        if allow_none:
            return None
        raise BenchFormatError(f"{what}: expected a number, got null", source, line)
    if isinstance(value, bool):
        raise BenchFormatError(f"{what}: expected a number, got {value!r}", source, line)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise BenchFormatError(f"{what}: expected a number, got {value!r}", source, line)


def integer(value: Any, what: str, source: str, line: int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # exact (epoch ns do not fit a float)
    f = number(value, what, source, line)
    if f is None:
        return None
    if f != f or f in (float("inf"), float("-inf")) or f != int(f):
        raise BenchFormatError(f"{what}: expected an integer, got {value!r}", source, line)
    return int(f)
