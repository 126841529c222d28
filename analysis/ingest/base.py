"""The parser contract, the registry and content-based detection.

A parser is one module per tool (``analysis/ingest/<tool>.py``) holding one class registered under the module's
name. It recognises its files by content (``sniff``), never by file name, and turns a file's text into
`ParsedRun` values (``parse``), raising `BenchFormatError` with the file, the line and what was expected.

Optional, for files that are not text or too large to hold as one string (getattr, not part of the Protocol):

- ``sniff_bytes(head: bytes) -> bool``: recognise a binary file (e.g. an SQLite database) from its first bytes;
- ``parse_path(path: Path, source: str) -> list[ParsedRun]``: read the file itself (stream JSON Lines with bounded
  memory, open a database, read the sibling files a tool writes beside it); used instead of ``parse``;
- ``markers: tuple[str, ...]``: JSON keys / column names / printed labels typical of the tool's files; an unknown
  file's error names the tool whose markers it shares most (`closest_formats`);
- ``describes: str``: what the parser reads, in words (e.g. ``"GuideLLM (benchmarks.json / .yaml / .csv)"``),
  added to the list of tools an unknown file's error names (the built-ins are in `TOOLS_READ`).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
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
BUILTIN = (
    "aiperf",
    "llama_benchy",
    "inferencex",
    "sglang",
    "vllm",
    "guidellm",
    "inference_perf",
    "evalscope",
)

SNIFF_CHARS = 65536
SQLITE_MAGIC = b"SQLite format 3\x00"

TOOLS_READ = (
    "SGLang bench_serving (printed block, --output-file JSONL), vLLM bench serve / benchmark_serving (JSON, printed "
    "block), llama-benchy (results, --emit-progress JSONL), AIPerf (profile_export.jsonl, profile_export_raw.jsonl, "
    "profile_export_aiperf.json), genai-perf (profile_export.json), InferenceX (result JSON)"
)
"""What the built-in parsers read, named in the error for an unknown file (plugins add theirs via ``describes``)."""


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
    """The parser whose format ``text`` is in; `BenchFormatError` naming the tools read, what the file looks like
    and the closest format when none fits."""
    head = text[:SNIFF_CHARS]
    parser = PARSERS.first(lambda p: p.sniff(head))
    if parser is not None:
        return parser
    raise unknown_format_error(head.encode("utf-8", "replace"), source, total_bytes=len(text))


def unknown_format_error(head: bytes, source: str, *, path: Path | None = None, total_bytes: int | None = None):
    """The error for a file no parser recognises: the tools we read, what the file looks like, the closest match."""
    shape, keys = describe_head(head, path=path, total_bytes=total_bytes)
    closest = closest_formats(keys)
    hint = f"; closest: {closest}" if closest else ""
    text = head.decode("utf-8", "replace")
    first = next((i + 1 for i, line in enumerate(text.splitlines()) if line.strip()), 0)
    extra = [d for p in PARSERS.values() if (d := getattr(p, "describes", None))]
    reads = TOOLS_READ + ("".join(f", {d}" for d in extra))
    return BenchFormatError(
        f"matches no known benchmark format (tried {', '.join(PARSERS.names())}): it is {shape}{hint}. Expected "
        f"one of: {reads}",
        source,
        first if shape.startswith("text") else 0,
    )


_LABEL = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 ()/%._-]{1,58}?)\s*[:=]\s*\S")
_KEY = re.compile(r'"((?:[^"\\]|\\.){1,80})"\s*:')


def describe_head(head: bytes, *, path: Path | None = None, total_bytes: int | None = None) -> tuple[str, list[str]]:
    """(what the file looks like in words, the keys / columns / labels it shows) from its first bytes."""
    if not head.strip():
        return "an empty file", []
    if head.startswith(SQLITE_MAGIC):
        tables = sqlite_tables(path) if path is not None else []
        shown = ", ".join(tables) if tables else "none readable"
        return f"an SQLite database (tables: {shown})", tables
    if b"\x00" in head[:4096]:
        return f"binary data (starts with {head[:16]!r})", []
    text = head.decode("utf-8", "replace")
    stripped = text.lstrip()
    whole = total_bytes is not None and total_bytes <= len(head)
    if stripped[:1] in "{[":
        value = _first_json(stripped, whole)
        if isinstance(value, dict):
            keys = list(value)
            nested = [f"{k}.{n}" for k, v in value.items() if isinstance(v, dict) for n in list(v)[:20]]
            lines = [ln for ln in stripped.splitlines() if ln.strip()]
            kind = "JSON Lines whose first record is an object" if _looks_jsonl(lines) else "a JSON object"
            return f"{kind} with keys {_shown(keys)}", keys + nested
        if isinstance(value, list):
            first = value[0] if value else None
            if isinstance(first, dict):
                return f"a JSON array of objects with keys {_shown(list(first))}", list(first)
            return f"a JSON array ({len(value)} items)", []
        keys = list(dict.fromkeys(m.group(1) for m in _KEY.finditer(stripped[:SNIFF_CHARS])))
        if keys:
            return f"JSON (not readable as a whole in its first {len(head)} bytes) with keys {_shown(keys)}", keys
        return f"text starting with {stripped.splitlines()[0][:80]!r}", []
    lines = [ln for ln in text.splitlines() if ln.strip()]
    first_line = lines[0].strip()
    for delim, word in ((",", "CSV"), ("\t", "tab-separated text"), (";", "semicolon-separated text")):
        if first_line.count(delim) >= 2:
            header = next(csv.reader(io.StringIO(first_line), delimiter=delim))
            cols = [c.strip() for c in header]
            return f"{word} with header {_shown(cols)}", cols
    labels = [m.group(1).strip() for ln in lines[:200] if (m := _LABEL.match(ln))]
    if len(labels) >= 3:
        return f"text with labels {_shown(labels)}", labels
    return f"text starting with {first_line[:80]!r}", []


def _first_json(text: str, whole: bool) -> Any:
    try:
        return json.loads(text) if whole else json.JSONDecoder().raw_decode(text)[0]
    except (ValueError, RecursionError):
        pass
    try:  # JSON Lines: the first line alone
        return json.loads(text.splitlines()[0])
    except (ValueError, RecursionError, IndexError):
        return None


def _looks_jsonl(lines: list[str]) -> bool:
    return len(lines) >= 2 and lines[0].lstrip().startswith("{") and lines[0].rstrip().endswith("}")


def _shown(items: list[str], limit: int = 12) -> str:
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def sqlite_tables(path: Path) -> list[str]:
    """The table names of an SQLite database, opened read-only; [] when it cannot be read."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        finally:
            con.close()
    except sqlite3.Error:
        return []


def closest_formats(keys: list[str]) -> str:
    """The parser whose ``markers`` the file's keys share most, in words ('' when it shares none)."""
    found = {k.lower() for k in keys} | {k.rsplit(".", 1)[-1].lower() for k in keys}
    best: tuple[tuple[int, float], str, list[str], list[str]] | None = None
    for name, parser in PARSERS.items():
        markers = [m for m in getattr(parser, "markers", ()) or ()]
        if not markers:
            continue
        shared = [m for m in markers if m.lower() in found]
        score = (len(shared), len(shared) / len(markers))
        if shared and (best is None or score > best[0]):
            best = (score, name, shared, [m for m in markers if m not in shared])
    if best is None:
        return ""
    _, name, shared, missing = best
    text = f"{name} (shares {_shown(shared, 6)}"
    return text + (f"; lacks {_shown(missing, 6)})" if missing else ")")


def parser_named(name: str) -> BenchParser:
    """The parser named ``name`` (``-`` read as ``_``); `BenchFormatError` naming the known formats otherwise."""
    return PARSERS.get(name)


def parse_text(text: str, source: str = "<text>", fmt: str | None = None) -> list[ParsedRun]:
    """Parse ``text`` with the named format, else the detected one."""
    parser = parser_named(fmt) if fmt else detect(text, source)
    runs = parser.parse(text, source)
    return _nonempty(runs, parser, source)


def _nonempty(runs: list[ParsedRun], parser: BenchParser, source: str) -> list[ParsedRun]:
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


def read_head(path: Path, size: int = SNIFF_CHARS) -> bytes:
    """The first ``size`` bytes of ``path``; `BenchFormatError` naming the file when it cannot be read."""
    try:
        with path.open("rb") as fh:
            return fh.read(size)
    except OSError as exc:
        raise BenchFormatError(f"cannot read: {exc.strerror or exc}", str(path)) from None


def _text_head(head: bytes) -> str:
    """The head as text for ``sniff``, a multi-byte character cut at the end dropped."""
    return head.decode("utf-8", "ignore")


def detect_file(path: Path, head: bytes | None = None) -> BenchParser:
    """The parser of the file at ``path``, from its first bytes (binary formats first, then text)."""
    head = read_head(path) if head is None else head
    parser = PARSERS.first(lambda p: bool(getattr(p, "sniff_bytes", None)) and p.sniff_bytes(head))  # type: ignore[attr-defined]
    if parser is None and not head.startswith(SQLITE_MAGIC):
        text = _text_head(head)
        parser = PARSERS.first(lambda p: p.sniff(text))
    if parser is None:
        try:
            total = path.stat().st_size
        except OSError:
            total = None
        raise unknown_format_error(head, str(path), path=path, total_bytes=total)
    return parser


def parse_file(path: str | Path, fmt: str | None = None) -> list[ParsedRun]:
    """Every run in the file at ``path``: the named format, else the one detected from its first bytes. Parsers
    with ``parse_path`` read the file themselves (streaming, binary); the others get its text."""
    path = Path(path)
    parser = parser_named(fmt) if fmt else detect_file(path)
    parse_path = getattr(parser, "parse_path", None)
    runs = parse_path(path, str(path)) if parse_path is not None else parser.parse(read_text(path), str(path))
    return _nonempty(runs, parser, str(path))


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


def loads_json(data: bytes) -> Any:
    """One JSON value (a JSON Lines record), with orjson where installed; raises ValueError / RecursionError."""
    return orjson.loads(data) if orjson is not None else json.loads(data)


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
