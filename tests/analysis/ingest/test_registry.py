"""Every parser / telemetry format is registered under its module's file name, and detection uses content only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import analysis.ingest as ingest_pkg
from analysis.ingest import base
from analysis.ingest.base import PARSERS, BenchParser, detect_file, parse_file, parser_named
from analysis.ingest.errors import BenchFormatError, TelemetryFormatError
from analysis.ingest.telemetry_import import base as tbase
from tests.analysis.ingest.bench_fixtures import REFUSED, refused_files, result_files, tool_of

INGEST = Path(ingest_pkg.__file__).parent
BENCH = Path(__file__).resolve().parents[2] / "fixtures" / "bench"
NOT_PARSERS = {"__init__", "base", "model", "errors", "cli", "importer", "timing", "_serving"}


def test_every_parser_module_is_registered_under_its_file_name() -> None:
    modules = {p.stem for p in INGEST.glob("*.py")} - NOT_PARSERS
    assert modules == set(base.BUILTIN) == set(PARSERS.names())
    for name, parser in PARSERS.items():
        assert parser.name == name
        assert isinstance(parser, BenchParser)


def test_every_telemetry_format_is_registered_under_its_file_name() -> None:
    modules = {p.stem for p in (INGEST / "telemetry_import").glob("*.py")} - {"__init__", "base"}
    assert modules == set(tbase.BUILTIN) == set(tbase.FORMATS.names())
    assert all(f.name == n for n, f in tbase.FORMATS.items())


def test_parsers_import_no_other_parser() -> None:
    """What two parsers share lives in a shared module (``_serving``), so each parser stands alone."""
    for module in base.BUILTIN:
        text = (INGEST / f"{module}.py").read_text()
        others = [m for m in base.BUILTIN if m != module and f"analysis.ingest.{m} import" in text]
        assert not others, f"{module} imports {others}"


def test_detection_tries_the_more_specific_formats_first() -> None:
    assert PARSERS.names() == list(base.BUILTIN)
    assert PARSERS.names().index("inferencex") < PARSERS.names().index("vllm")


def test_an_unknown_format_name_is_refused_naming_the_known_ones() -> None:
    assert parser_named("llama-benchy").name == "llama_benchy"
    with pytest.raises(BenchFormatError, match=r"unknown benchmark format 'nope'; known: aiperf, llama_benchy, "):
        parser_named("nope")
    with pytest.raises(TelemetryFormatError, match=r"unknown telemetry format 'nope'; known: line_protocol, "):
        tbase.format_named("nope")


@pytest.mark.parametrize("path", result_files() + refused_files(), ids=lambda p: str(p.relative_to(BENCH)))
def test_detection_ignores_the_file_name(path: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "results.dat"
    shutil.copy(path, renamed)
    expected = tool_of(path)
    if "sglang_0.5" in path.name or "sglang_bench" in path.name:
        expected = "sglang"
    assert detect_file(renamed).name == expected
    if path.name in REFUSED:  # detected, then refused with a pointer to the files to import
        with pytest.raises(BenchFormatError, match="import"):
            parse_file(renamed)
    else:
        assert parse_file(renamed)


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):

        @base.register("vllm")
        class Another:
            def sniff(self, head: str) -> bool:
                return False
