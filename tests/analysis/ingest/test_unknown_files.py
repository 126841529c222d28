"""A file no parser reads gets one error naming the tools we read, what the file looks like and the closest format."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.ingest.base import parse_file
from analysis.ingest.cli import app
from analysis.ingest.errors import BenchFormatError


def refusal(path: Path) -> str:
    with pytest.raises(BenchFormatError) as err:
        parse_file(path)
    return str(err.value)


def test_the_error_names_every_tool_we_read(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    msg = refusal(path)
    assert msg.startswith(f"{path}:1: matches no known benchmark format (tried aiperf, llama_benchy, ")
    for tool in ("SGLang", "vLLM", "llama-benchy", "AIPerf", "genai-perf", "InferenceX"):
        assert tool in msg
    assert "it is text starting with 'hello'" in msg


def test_a_json_object_is_described_by_its_keys_with_the_closest_format(tmp_path: Path) -> None:
    path = tmp_path / "result.json"  # vLLM-like keys but no "date": not a vLLM result
    path.write_text(json.dumps({"model_id": "m", "completed": 3, "duration": 1.5, "request_throughput": 2.0}))
    msg = refusal(path)
    assert "it is a JSON object with keys model_id, completed, duration, request_throughput" in msg
    assert "closest: vllm (shares model_id, duration, completed, request_throughput; lacks date," in msg


def test_json_lines_are_described_by_the_first_records_keys(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind": "a", "value": 1}\n{"kind": "b", "value": 2}\n')
    assert "it is JSON Lines whose first record is an object with keys kind, value" in refusal(path)


def test_a_csv_is_described_by_its_header(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.csv"
    path.write_text("rate,ttft_ms,itl_ms\n1,2,3\n")
    assert "it is CSV with header rate, ttft_ms, itl_ms" in refusal(path)


def test_an_sqlite_database_is_described_by_its_tables(tmp_path: Path) -> None:
    path = tmp_path / "benchmark_data.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE requests (start REAL, ttft REAL)")
    con.execute("CREATE TABLE meta (k TEXT)")
    con.commit()
    con.close()
    msg = refusal(path)
    assert "it is an SQLite database (tables: meta, requests)" in msg and "not UTF-8" not in msg


def test_empty_and_binary_files_say_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    assert "it is an empty file" in refusal(empty)
    blob = tmp_path / "x.bin"
    blob.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert "it is binary data (starts with b'\\x89PNG" in refusal(blob)


def test_the_cli_prints_it_as_one_error_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"hello": [{"world": 1}]}))
    result = CliRunner().invoke(app, ["bench", str(path), "--store", str(tmp_path / "store")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: matches no known benchmark format")
    assert "JSON object with keys hello" in lines[0] and "Traceback" not in result.output
