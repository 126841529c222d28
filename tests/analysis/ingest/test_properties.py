"""Random truncation and corruption of every format give a clear `BenchFormatError` (file + line), never a crash and
never a silently wrong number.

Corruption model: one byte that cannot form or separate numbers (letters, brackets, quotes, ``:``, ``|``, ``#``,
NUL, newline, ``±``) inserted anywhere. A digit turned into another digit is undetectable by any parser and is not
tested. A result is "not wrong" when every number it holds equals the undamaged file's (a value may go missing).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.ingest.base import parse_text
from analysis.ingest.errors import BenchFormatError
from analysis.ingest.model import ParsedRun
from tests.analysis.ingest.bench_fixtures import result_files
from tests.analysis.ingest.fake_bench import (
    aiperf_records,
    fake_workload,
    genai_perf_export,
    sglang_details,
    vllm_detailed,
)

BENCH = Path(__file__).resolve().parents[2] / "fixtures" / "bench"
SOURCE = "damaged.file"


def _texts() -> dict[str, str]:
    texts = {p.name[:40]: p.read_text() for p in result_files(flat_only=True) if "progress" not in p.name}
    progress = (BENCH / "llama_benchy" / "llama-benchy_0.3.7_Gabe298_rdtand-prismaaura_progress.jsonl").read_text()
    lines = progress.splitlines(keepends=True)
    # the first two requests of the stream (header .. second request_end) keep the examples fast
    ends = [i for i, line in enumerate(lines) if '"request_end"' in line]
    texts["llama-benchy progress (2 requests)"] = "".join(lines[: ends[1] + 1])
    w = fake_workload(seed=3, n=6, concurrency=2, osl=6, failures=1)
    texts["vllm --save-detailed"] = json.dumps(vllm_detailed(w), indent=1)
    texts["sglang --output-details nested"] = json.dumps(sglang_details(w, nested=True)) + "\n"
    texts["aiperf records"] = "".join(json.dumps(r) + "\n" for r in aiperf_records(w))
    real = (BENCH / "aiperf" / "0.13.0-concurrency2" / "profile_export.jsonl").read_text().splitlines(keepends=True)
    texts["aiperf 0.13.0 records (3 requests)"] = "".join(real[:3])
    texts["genai-perf export"] = json.dumps(genai_perf_export(w), indent=1)
    raw = vllm_detailed(w, legacy=True) | {"benchmark_start_time_unix": 1.7e9, "benchmark_end_time_unix": 1.7e9 + 9}
    texts["inferencex raw result"] = json.dumps(raw)
    agg = {
        "hw": "mi300x",
        "tp": 8,
        "ep": 1,
        "conc": 64,
        "isl": 8192,
        "osl": 1024,
        "model": "m",
        "framework": "sglang",
        "tput_per_gpu": 926.27,
        "output_tput_per_gpu": 102.76,
        "median_tpot": 0.07422,
        "p99_itl": 0.41167,
    }
    texts["inferencex agg"] = json.dumps([agg, agg | {"conc": 32}], indent=2)
    return texts


TEXTS = _texts()
JUNK = ["x", "Q", "#", "@", "\x00", "{", "}", "[", "]", "|", ":", '"', "\n", "±"]


def _parse(text: str) -> list[ParsedRun] | None:
    try:
        return parse_text(text, SOURCE)
    except BenchFormatError:
        return None


def _column_ok(damaged: pl.Series, original: pl.Series) -> bool:
    d, o = damaged.to_list(), original.to_list()
    if damaged.name == "error":
        return all((a is None) == (b is None) or a is None for a, b in zip(d, o, strict=True))
    # derived values (e2e = ttft + sum(itl) when latencies are lost) may differ by float rounding only
    return all(
        a is None or a == b or (b is not None and a == pytest.approx(b, rel=1e-9)) for a, b in zip(d, o, strict=True)
    )


def _not_wrong(damaged: ParsedRun, originals: list[ParsedRun]) -> bool:
    for o in originals:
        if any(k not in o.summary or o.summary[k] != v for k, v in damaged.summary.items()):
            continue
        if damaged.requests is None:
            return True
        if o.requests is None or o.requests.height != damaged.requests.height:
            continue
        if all(_column_ok(damaged.requests[c], o.requests[c]) for c in damaged.requests.columns):
            return True
    return False


def _check_error(exc: BenchFormatError) -> None:
    assert exc.source == SOURCE
    assert str(exc).startswith(SOURCE)
    text = str(exc).lower()
    assert "expected" in text or "truncated" in text or "invalid" in text, text


@pytest.mark.parametrize("name", list(TEXTS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_truncation_gives_an_error_or_only_complete_lines(name: str, data: st.DataObject) -> None:
    text = TEXTS[name]
    k = data.draw(st.integers(0, len(text) - 1), label="cut")
    try:
        runs = parse_text(text[:k], SOURCE)
    except BenchFormatError as exc:
        _check_error(exc)
        return
    prev = text[: text.rfind("\n", 0, k) + 1]
    nxt = text.find("\n", k)
    full_line = text[: len(text) if nxt < 0 else nxt + 1]
    candidates = [c for c in (_parse(prev), _parse(full_line)) if c is not None]
    # only complete lines were used (a record stream cut at a line boundary is a shorter, valid stream)
    assert any(len(c) == len(runs) and all(_not_wrong(r, c) for r in runs) for c in candidates), name


@pytest.mark.parametrize("name", list(TEXTS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_corruption_gives_an_error_or_no_wrong_number(name: str, data: st.DataObject) -> None:
    text = TEXTS[name]
    pos = data.draw(st.integers(0, len(text)), label="position")
    junk = data.draw(st.sampled_from(JUNK), label="junk")
    try:
        runs = parse_text(text[:pos] + junk + text[pos:], SOURCE)
    except BenchFormatError as exc:
        _check_error(exc)
        return
    originals = parse_text(text, SOURCE)
    assert all(_not_wrong(r, originals) for r in runs), (name, pos, junk)


@pytest.mark.parametrize("text", ["", "\n\n", "hello world\n", "{}", "[]", '{"foo": 1}', "\x00\x01", "| a | b |\n"])
def test_unknown_content_is_a_clear_error(text: str) -> None:
    with pytest.raises(BenchFormatError, match=rf"^{SOURCE}"):
        parse_text(text, SOURCE)


def test_a_corrupt_key_in_a_request_end_is_an_error_not_a_missing_count() -> None:
    text = TEXTS["llama-benchy progress (2 requests)"]
    damaged = text.replace('"prompt_tokens"', '"prompt_toxkens"', 1)
    with pytest.raises(BenchFormatError, match=r"request_end: expected keys \['prompt_tokens'\]"):
        parse_text(damaged, SOURCE)
