"""`neighborscope scrape URL`: recorded engine expositions served over real loopback HTTP, read twice."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from agents.scrape import scrape
from tests.agents.samplers.test_serving import MetricsServer, closed_port_url, fixture
from tests.conftest import ROOT

app = typer.Typer()
app.command()(scrape)


@pytest.fixture
def serve() -> Iterator:
    servers: list[MetricsServer] = []

    def make(body: str | list[str] = "", **kw: object) -> MetricsServer:
        servers.append(MetricsServer(body, **kw))  # type: ignore[arg-type]
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_scrape_reports_engine_metrics_found_and_missing_and_the_interval(serve):
    srv = serve([fixture("sglang_docs_tpot"), fixture("sglang_docs_tpot_later")])
    result = run(srv.url, "--interval-s", "0.1")
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "engine sglang (detected from the metric names)" in out
    assert "version hint: an older release (func_latency_seconds" in out
    assert "models (model_name label): meta-llama/Llama-3.1-8B-Instruct" in out
    assert "inter-token latency sglang:time_per_output_token_seconds" in out
    assert "queue time missing (looked for sglang:queue_time_seconds)" in out
    assert "ttft_ms p50 / p90 / p99 3500 / 6250 / 7375 10 observations; p99 in bucket 5000..7500 ms" in out
    assert "e2e_ms p50 / p90 / p99 35000 / 39000 / 39900 10 observations; p99 in bucket 30000..40000 ms" in out
    assert srv.requests == 2


def test_scrape_of_a_vllm_v0_endpoint_names_the_old_kv_cache_metric(serve):
    srv = serve(fixture("vllm_v0_aibrix_docs"))
    result = run(srv.url, "--engine", "vllm", "--interval-s", "0")
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "engine vllm (given with --engine)" in out
    assert "KV-cache use vllm:gpu_cache_usage_perc" in out and "V0 engine" in out
    assert "no request finished in the interval" in out


def test_scrape_says_when_the_engine_restarted_between_the_scrapes(serve):
    srv = serve([fixture("sglang_docs_tpot"), fixture("sglang_docs_restart")])
    result = run(srv.url, "--interval-s", "0")
    assert result.exit_code == 0, result.output
    assert "engine restart" in result.stdout


def test_scrape_sends_the_bearer_token_of_a_file(serve, tmp_path):
    srv = serve(fixture("sglang_docs_itl"), token="s3cret")
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    ok = run(srv.url, "--bearer-token-file", str(token), "--interval-s", "0")
    assert ok.exit_code == 0, ok.output
    refused = run(srv.url, "--interval-s", "0")
    assert refused.exit_code == 2
    assert refused.stderr.strip() == f"error: {srv.url}: HTTP 401: no bearer token given"


def test_an_unreachable_url_is_exit_code_2_with_one_line():
    url = closed_port_url()
    result = run(url, "--interval-s", "0")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {url}: cannot connect") and result.stderr.count("\n") == 1


def test_a_page_that_is_not_an_exposition_is_exit_code_2(serve):
    srv = serve("<!doctype html><html><body>login</body></html>", content_type="text/html")
    result = run(srv.url, "--interval-s", "0")
    assert result.exit_code == 2 and "not a Prometheus text exposition" in result.stderr


def test_a_bad_engine_name_is_exit_code_2():
    result = run("http://127.0.0.1:1/metrics", "--engine", "triton")
    assert result.exit_code == 2 and "engine: Input should be 'auto', 'vllm'" in result.stderr


def test_python_dash_m_runs_the_command_as_a_process(serve):
    srv = serve([fixture("sglang_docs_itl"), fixture("sglang_docs_itl_later")])
    proc = subprocess.run(
        [sys.executable, "-m", "agents.scrape", srv.url, "--interval-s", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sglang:inter_token_latency_seconds" in proc.stdout and "1500 observations" in proc.stdout
