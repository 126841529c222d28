"""The serving sampler: recorded vLLM / SGLang expositions served over real loopback HTTP(S), quantiles from bucket
deltas against hand-computed answers, counter resets, renamed metrics, several models, down and slow endpoints."""

from __future__ import annotations

import gzip
import http.server
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from agents.agent import Agent, build_samplers
from agents.config import parse_config
from agents.promhist import (
    bucket_deltas,
    cumulative_buckets,
    histogram_quantile,
    parse_exposition,
)
from agents.samplers.serving import (
    ENGINES,
    ServingEndpoint,
    ServingSampler,
    detect_engine,
    family_prefixes,
    found_metrics,
)
from agents.spool import MemorySpool
from agents.tick import SamplerRunner
from telemetry.batch import BatchIn, batch_frames
from telemetry.schema import MEASUREMENTS

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "serving"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.prom").read_text()


class MetricsServer:
    """A tiny real HTTP(S) server on loopback that serves ``body`` at /metrics; tests change ``body`` between scrapes
    (or give a list: the n-th request gets the n-th text, the last one from then on).

    ``token``: refuse requests without ``Authorization: Bearer <token>`` (401). ``delay_s``: answer late."""

    def __init__(
        self,
        body: str | list[str] = "",
        token: str | None = None,
        delay_s: float = 0.0,
        tls: tuple[Path, Path] | None = None,
        content_type: str = "text/plain; version=0.0.4; charset=utf-8",
        trickle_s: float = 0.0,
    ) -> None:
        self.body, self.token, self.delay_s, self.content_type = body, token, delay_s, content_type
        self.trickle_s = trickle_s
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if outer.token is not None and self.headers.get("Authorization") != f"Bearer {outer.token}":
                    self.send_response(401)
                    self.end_headers()
                    return
                body = outer.body
                if isinstance(body, list):
                    body = body[min(outer.requests, len(body)) - 1]
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", outer.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not outer.trickle_s:
                    self.wfile.write(data)
                    return
                for k in range(0, len(data), 64):  # a server that answers, but a few bytes at a time
                    try:
                        self.wfile.write(data[k : k + 64])
                        self.wfile.flush()
                    except OSError:  # the client gave up
                        return
                    time.sleep(outer.trickle_s)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        host = "localhost" if tls is not None else "127.0.0.1"
        self.url = f"{scheme}://{host}:{self.httpd.server_address[1]}/metrics"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator:
    servers: list[MetricsServer] = []

    def make(body: str = "", **kw: object) -> MetricsServer:
        s = MetricsServer(body, **kw)  # type: ignore[arg-type]
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


class StepClock:
    """A monotonic clock that advances ``step_s`` per call: the interval between two scrapes is known exactly."""

    def __init__(self, step_s: float = 5.0) -> None:
        self.t, self.step_s = 1000.0, step_s

    def __call__(self) -> float:
        self.t += self.step_s
        return self.t


def sampler(*endpoints: dict, clock: StepClock | None = None) -> ServingSampler:
    return ServingSampler([ServingEndpoint.model_validate(e) for e in endpoints], clock=clock or StepClock())


def one(rows: dict, model: str | None = MODEL) -> dict:
    found = [r for r in rows["serving"] if r.get("model") == model]
    assert len(found) == 1, rows
    return found[0]


# --- the quantile function ------------------------------------------------------------------------------------


def test_histogram_quantile_known_answer_is_prometheus_linear_interpolation():
    buckets = [(0.1, 10.0), (0.5, 60.0), (1.0, 90.0), (float("inf"), 100.0)]
    p50 = histogram_quantile(0.5, buckets)
    assert p50 is not None and p50.value == pytest.approx(0.42) and (p50.bucket_lo, p50.bucket_hi) == (0.1, 0.5)
    p90 = histogram_quantile(0.9, buckets)  # rank 90 is the last observation of (0.5, 1.0]
    assert p90 is not None and p90.value == pytest.approx(1.0)
    p05 = histogram_quantile(0.05, buckets)  # the first bucket starts at 0
    assert p05 is not None and p05.value == pytest.approx(0.05) and p05.bucket_lo == 0.0
    p99 = histogram_quantile(0.99, buckets)  # in +Inf: the highest finite bound, and no upper bound
    assert p99 is not None and p99.value == 1.0 and (p99.bucket_lo, p99.bucket_hi) == (1.0, None)


def test_histogram_quantile_has_no_answer_without_observations_or_an_inf_bucket():
    assert histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    assert histogram_quantile(0.5, [(0.1, 1.0), (0.5, 2.0)]) is None
    assert histogram_quantile(1.5, [(0.1, 1.0), (float("inf"), 2.0)]) is None


def test_bucket_deltas_are_the_interval_and_a_decrease_is_a_reset():
    before = cumulative_buckets([(0.1, 5), (1.0, 8)], count=9)
    now = cumulative_buckets([(0.1, 6), (1.0, 12)], count=15)
    assert bucket_deltas(now, before) == [(0.1, 1), (1.0, 4), (float("inf"), 6)]
    assert bucket_deltas(before, now) is None


def test_only_the_families_the_sampler_reads_are_parsed():
    expo = parse_exposition(fixture("sglang_docs_tpot"), family_prefixes("sglang"))
    assert "sglang:cache_hit_rate" not in expo.samples and "sglang:gen_throughput" not in expo.samples
    assert "sglang:time_to_first_token_seconds_bucket" in expo.samples
    assert "sglang:func_latency_seconds_count" in expo.samples  # a version hint
    full = parse_exposition(fixture("sglang_docs_tpot"))
    assert expo.samples["sglang:prompt_tokens"] == full.samples["sglang:prompt_tokens"]


def test_the_prometheus_parser_reads_the_recorded_expositions():
    for name, engine in (
        ("sglang_docs_tpot", "sglang"),
        ("sglang_docs_itl", "sglang"),
        ("vllm_v1_design_doc", "vllm"),
        ("vllm_v0_aibrix_docs", "vllm"),
    ):
        assert detect_engine(parse_exposition(fixture(name))) == engine


# --- one interval from recorded expositions over HTTP --------------------------------------------------------


def test_an_sglang_interval_from_recorded_expositions_over_http(serve):
    srv = serve(fixture("sglang_docs_tpot"))
    s = sampler({"group": "hive0", "url": srv.url, "engine": "sglang"})
    first = one(s.read(0.0))
    assert first["up"] is True and first["counter_reset"] is False and first["interval_s"] is None
    assert first["requests_per_s"] is None and first["ttft_ms_p50"] is None  # one scrape: no interval yet
    assert first["requests_running"] == 162.0 and first["requests_waiting"] == 2826.0
    assert first["kv_cache_usage_pct"] == pytest.approx(28.0)

    srv.body = fixture("sglang_docs_tpot_later")
    row = one(s.read(5.0))
    assert row["group"] == "hive0" and row["engine"] == "sglang" and row["model"] == MODEL
    assert row["interval_s"] == 5.0 and row["up"] is True and row["counter_reset"] is False
    assert row["requests_per_s"] == pytest.approx(2.0)  # 10 e2e observations in 5 s
    assert row["prompt_tokens_per_s"] == pytest.approx(400.0) and row["generation_tokens_per_s"] == pytest.approx(300.0)
    assert row["prompt_tokens_mean"] == pytest.approx(200.0)  # 2000 prompt tokens / 10 requests
    assert row["requests_running"] == 150.0 and row["kv_cache_usage_pct"] == pytest.approx(30.0)
    # TTFT: 3 in (1, 2.5], 5 in (2.5, 5], 2 in (5, 7.5] s (tests/fixtures/serving/README.md)
    assert row["ttft_count"] == 10
    assert row["ttft_ms_p50"] == pytest.approx(3500.0)
    assert row["ttft_ms_p90"] == pytest.approx(6250.0)
    assert row["ttft_ms_p99"] == pytest.approx(7375.0)
    assert (row["ttft_ms_p99_bucket_lo"], row["ttft_ms_p99_bucket_hi"]) == (5000.0, 7500.0)
    assert row["e2e_count"] == 10 and row["e2e_ms_p50"] == pytest.approx(35000.0)
    # the old SGLang per-token histogram: 1000 in (75, 100] ms, 500 in (100, 150] ms
    for role in ("itl", "tpot"):
        assert row[f"{role}_count"] == 1500
        assert row[f"{role}_ms_p50"] == pytest.approx(93.75)
        assert row[f"{role}_ms_p90"] == pytest.approx(135.0)
        assert row[f"{role}_ms_p99"] == pytest.approx(148.5)
        assert (row[f"{role}_ms_p99_bucket_lo"], row[f"{role}_ms_p99_bucket_hi"]) == (100.0, 150.0)
    assert row["queue_ms_p50"] is None and row["queue_count"] is None  # this release has no queue histogram
    assert set(row) - {"group", "engine", "model", "endpoint"} <= set(MEASUREMENTS["serving"].field_index)


def test_an_interval_without_requests_has_counts_of_zero_and_no_quantiles(serve):
    srv = serve(fixture("sglang_docs_tpot"))
    s = sampler({"group": "hive0", "url": srv.url})
    s.read(0.0)
    row = one(s.read(5.0))
    assert row["ttft_count"] == 0 and row["ttft_ms_p50"] is None and row["requests_per_s"] == 0.0


def test_an_engine_restart_nulls_the_interval_and_flags_the_reset(serve):
    srv = serve(fixture("sglang_docs_tpot"))
    s = sampler({"group": "hive0", "url": srv.url, "engine": "auto"})
    s.read(0.0)
    srv.body = fixture("sglang_docs_restart")
    row = one(s.read(5.0))
    assert row["counter_reset"] is True and row["up"] is True
    assert row["requests_per_s"] is None and row["prompt_tokens_per_s"] is None and row["prompt_tokens_mean"] is None
    assert all(row[f"{r}_ms_p50"] is None and row[f"{r}_count"] is None for r in ("ttft", "itl", "e2e"))
    assert row["requests_running"] == 1.0  # gauges are read as they are
    after = one(s.read(10.0))  # the next interval starts from the restarted counters
    assert after["counter_reset"] is False and after["requests_per_s"] == 0.0 and after["ttft_count"] == 0


def test_a_changed_process_start_time_is_a_restart_even_when_counters_grew(serve):
    text = 'process_start_time_seconds 1700000000.0\n# TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total{model_name="m"} 10.0\n'
    srv = serve(text)
    s = sampler({"group": "g", "url": srv.url})
    s.read(0.0)
    srv.body = text.replace("1700000000.0", "1700000100.0").replace("} 10.0", "} 50.0")
    row = one(s.read(5.0), "m")
    assert row["counter_reset"] is True and row["prompt_tokens_per_s"] is None


def test_renamed_metrics_are_found_under_either_name(serve):
    old = found_metrics(parse_exposition(fixture("sglang_docs_tpot")), "sglang")
    new = found_metrics(parse_exposition(fixture("sglang_docs_itl")), "sglang")
    assert old["itl"] == "sglang:time_per_output_token_seconds"
    assert new["itl"] == "sglang:inter_token_latency_seconds" and new["tpot"] is None
    srv = serve(fixture("sglang_docs_itl"))
    s = sampler({"group": "hive0", "url": srv.url})
    s.read(0.0)
    srv.body = fixture("sglang_docs_itl_later")
    row = one(s.read(5.0))
    assert row["itl_ms_p50"] == pytest.approx(93.75) and row["itl_ms_p99"] == pytest.approx(148.5)
    assert row["tpot_ms_p50"] is None  # this release has no per-request TPOT under the old name
    v0 = found_metrics(parse_exposition(fixture("vllm_v0_aibrix_docs")), "vllm")
    assert v0["kv_usage"] == "vllm:gpu_cache_usage_perc" and v0["prompt_tokens"] == "vllm:prompt_tokens"


def test_a_histogram_renamed_between_two_scrapes_is_not_compared_across_names(serve):
    srv = serve(fixture("sglang_docs_tpot"))
    s = sampler({"group": "hive0", "url": srv.url})
    s.read(0.0)
    srv.body = fixture("sglang_docs_itl")  # an upgrade: the per-token histogram under its new name
    row = one(s.read(5.0))
    assert row["itl_count"] is None and row["tpot_count"] is None and row["counter_reset"] is False
    assert row["ttft_count"] == 0  # the other histograms still compare
    srv.body = fixture("sglang_docs_itl_later")
    row = one(s.read(10.0))  # from then on, the new name on both sides
    assert row["itl_count"] == 1500 and row["itl_ms_p90"] == pytest.approx(135.0)


def test_vllm_v1_design_doc_exposition_without_an_inf_bucket_uses_the_count(serve):
    srv = serve(fixture("vllm_v1_design_doc"))
    s = sampler({"group": "g", "url": srv.url})
    row = one(s.read(0.0))
    assert row["engine"] == "vllm" and row["requests_running"] == 8.0
    later = fixture("vllm_v1_design_doc").replace(
        'le="0.1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0',
        'le="0.1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 150.0',
    )
    later = later.replace('_count{model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0',
                          '_count{model_name="meta-llama/Llama-3.1-8B-Instruct"} 150.0')  # fmt: skip
    srv.body = later
    row = one(s.read(5.0))
    # 10 TTFTs in (0.08, 0.1] s: p50 = 80 + 20 * 5 / 10 ms
    assert row["ttft_count"] == 10 and row["ttft_ms_p50"] == pytest.approx(90.0)


# --- several models, data-parallel engines, live exposition ------------------------------------------------


def vllm_registry() -> tuple[CollectorRegistry, dict]:
    """The vLLM V1 metrics this test needs, declared as vLLM's loggers.py declares them (names, labels, TTFT
    buckets), through prometheus_client as vLLM does: the exposition vLLM itself would write."""
    reg = CollectorRegistry()
    labels = ["model_name", "engine"]
    m = {
        "running": Gauge("vllm:num_requests_running", "Number of requests in model execution batches.", labels,
                         registry=reg),
        "waiting": Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", labels,
                         registry=reg),
        "kv": Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", labels, registry=reg),
        "prompt": Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", labels, registry=reg),
        "success": Counter("vllm:request_success", "Count of successfully processed requests.",
                           [*labels, "finished_reason"], registry=reg),
        "ttft": Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", labels,
                          buckets=[0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                                   7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0], registry=reg),
        "itl": Histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", labels,
                         buckets=[0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                                  10.0, 20.0, 40.0, 80.0], registry=reg),
        "prompt_len": Histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", labels,
                                buckets=[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000], registry=reg),
    }  # fmt: skip
    return reg, m


def test_several_models_and_data_parallel_engines_give_one_row_per_model(serve):
    reg, m = vllm_registry()
    for model, engines in (("llama", ("0", "1")), ("qwen", ("0",))):
        for e in engines:  # vLLM creates every engine's and finish reason's series at start (make_per_engine)
            for reason in ("stop", "length", "abort"):
                m["success"].labels(model, e, reason)
            for metric in ("prompt", "ttft", "itl", "prompt_len"):
                m[metric].labels(model, e)
            m["running"].labels(model, e).set(3)
            m["waiting"].labels(model, e).set(1)
            m["kv"].labels(model, e).set(0.2 if e == "0" else 0.4)
    srv = serve(generate_latest(reg).decode())
    s = sampler({"group": "hive0", "url": srv.url, "engine": "auto"})
    s.read(0.0)
    for _ in range(4):  # llama: 4 requests on each engine, TTFT 30 ms, 100 prompt tokens, ITL 60 ms
        for e in ("0", "1"):
            m["success"].labels("llama", e, "stop").inc()
            m["prompt"].labels("llama", e).inc(100)
            m["ttft"].labels("llama", e).observe(0.03)
            m["itl"].labels("llama", e).observe(0.06)
            m["prompt_len"].labels("llama", e).observe(100)
    m["success"].labels("qwen", "0", "length").inc(5)
    m["ttft"].labels("qwen", "0").observe(3.0)
    srv.body = generate_latest(reg).decode()
    rows = s.read(5.0)
    assert sorted(r["model"] for r in rows["serving"]) == ["llama", "qwen"]
    llama, qwen = one(rows, "llama"), one(rows, "qwen")
    assert llama["engine"] == "vllm" and llama["requests_per_s"] == pytest.approx(8 / 5.0)
    assert llama["requests_running"] == 6.0 and llama["kv_cache_usage_pct"] == pytest.approx(30.0)  # mean of ranks
    assert llama["ttft_count"] == 8 and 20.0 < llama["ttft_ms_p50"] <= 40.0
    assert (llama["ttft_ms_p99_bucket_lo"], llama["ttft_ms_p99_bucket_hi"]) == (20.0, 40.0)
    assert 50.0 < llama["itl_ms_p50"] <= 75.0 and llama["prompt_tokens_mean"] == pytest.approx(100.0)
    assert qwen["requests_per_s"] == pytest.approx(1.0) and qwen["ttft_count"] == 1
    assert (qwen["ttft_ms_p99_bucket_lo"], qwen["ttft_ms_p99_bucket_hi"]) == (2500.0, 5000.0)


def test_tensor_parallel_ranks_reporting_one_batch_are_not_counted_twice(serve):
    text = (
        "# TYPE sglang:num_running_reqs gauge\n"
        'sglang:num_running_reqs{dp_rank="0",model_name="m",tp_rank="0"} 8\n'
        'sglang:num_running_reqs{dp_rank="0",model_name="m",tp_rank="1"} 8\n'
        'sglang:num_running_reqs{dp_rank="1",model_name="m",tp_rank="0"} 5\n'
        'sglang:num_running_reqs{dp_rank="1",model_name="m",tp_rank="1"} 5\n'
    )
    srv = serve(text)
    assert one(sampler({"group": "g", "url": srv.url}).read(0.0), "m")["requests_running"] == 13.0


def test_two_endpoints_of_one_group_are_two_series_told_apart_by_their_endpoint(serve, caplog):
    """A prefill and a decode pool of one group, same engine and model: the ``endpoint`` tag (host:port) keeps them
    two series, so neither overwrites the other."""
    a, b = serve(fixture("sglang_docs_tpot")), serve(fixture("sglang_docs_itl"))
    s = sampler({"group": "hive0", "url": a.url}, {"group": "hive0", "url": b.url})
    for ts in (0.0, 5.0):
        rows = s.read(ts)["serving"]
        assert [r["up"] for r in rows] == [True, True]
        assert {r["endpoint"] for r in rows} == {endpoint_of(a.url), endpoint_of(b.url)}
    assert s.errors == 0 and "both report" not in caplog.text


def endpoint_of(url: str) -> str:
    from urllib.parse import urlsplit

    return f"{urlsplit(url).hostname}:{urlsplit(url).port}"


def test_a_model_filter_keeps_one_model(serve):
    reg, m = vllm_registry()
    m["running"].labels("llama", "0").set(2)
    m["running"].labels("qwen", "0").set(7)
    srv = serve(generate_latest(reg).decode())
    rows = sampler({"group": "g", "url": srv.url, "model": "qwen"}).read(0.0)["serving"]
    assert [(r["model"], r["requests_running"]) for r in rows] == [("qwen", 7.0)]


# --- down, slow, refused, not an exposition -----------------------------------------------------------------


def closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/metrics"


def test_a_down_endpoint_gives_a_row_with_up_false_and_the_health_says_why(serve, caplog):
    srv = serve(fixture("sglang_docs_tpot"))
    url = srv.url
    s = sampler({"group": "hive0", "url": url})
    s.read(0.0)
    srv.close()
    rows = s.read(5.0)["serving"]
    assert rows == [{"group": "hive0", "engine": "sglang", "model": MODEL, "endpoint": endpoint_of(url), "up": False}]
    assert s.errors == 1 and "cannot connect" in (s.last_error[url] or "")
    assert "is down" in caplog.text
    now = time.time()
    assert s.staleness_s(now + 30) == pytest.approx(30, abs=2)


def test_an_endpoint_never_reached_is_down_from_the_first_tick():
    url = closed_port_url()
    s = sampler({"group": "g", "url": url, "engine": "vllm"})
    assert s.read(0.0)["serving"] == [
        {"group": "g", "engine": "vllm", "model": None, "endpoint": endpoint_of(url), "up": False}
    ]
    assert s.staleness_s(time.time()) is not None


def test_a_slow_endpoint_cannot_stall_the_tick_of_the_others(serve):
    slow = serve(fixture("sglang_docs_tpot"), delay_s=3.0)
    fast = serve(fixture("vllm_v0_aibrix_docs"))
    s = ServingSampler(
        [
            ServingEndpoint(group="a", url=slow.url, timeout_s=0.3),
            ServingEndpoint(group="b", url=fast.url, timeout_s=0.3),
        ]
    )
    t0 = time.monotonic()
    rows = s.read(0.0)["serving"]
    assert time.monotonic() - t0 < 1.5
    by_group = {r["group"]: r for r in rows}
    assert by_group["a"]["up"] is False and by_group["b"]["up"] is True
    assert "no answer within 0.3 s" in (s.last_error[slow.url] or "")


def test_an_endpoint_that_trickles_its_answer_is_cut_off_at_the_deadline_and_not_piled_up(serve):
    srv = serve(fixture("sglang_docs_tpot"), trickle_s=0.1)  # ~15 KB in 64-byte pieces: about 25 s
    s = ServingSampler([ServingEndpoint(group="g", url=srv.url, timeout_s=0.5)])
    t0 = time.monotonic()
    assert s.read(0.0)["serving"][0]["up"] is False
    assert time.monotonic() - t0 < s.deadline_s + 0.5
    assert s.last_error[srv.url] == "no answer within 1.5 s"
    assert s.read(1.0)["serving"][0]["up"] is False
    assert s.last_error[srv.url] == "the previous scrape is still running (the endpoint is too slow)"
    assert srv.requests == 1
    s.close()


def test_the_health_row_counts_the_failures_and_shows_the_staleness():
    url = closed_port_url()
    s = sampler({"group": "g", "url": url})
    got: list[dict] = []
    runner = SamplerRunner(s, 1, lambda rows: got.append(rows), lambda rows, ts: rows)
    try:
        ts_ns = time.time_ns()
        assert runner.trigger(ts_ns)
        assert runner.wait_idle(10)
    finally:
        runner.stop()
    health = got[-1]["agent"][0]
    assert health["sampler"] == "serving" and health["ok"] is True and health["errors_total"] == 1
    assert health["staleness_s"] is not None and health["staleness_s"] >= 0
    assert got[-1]["serving"][0]["up"] is False


def test_a_page_that_is_not_a_prometheus_exposition_is_down_with_the_reason(serve):
    srv = serve("<html><body>Welcome to nginx!</body></html>", content_type="text/html")
    s = sampler({"group": "g", "url": srv.url})
    assert s.read(0.0)["serving"][0]["up"] is False
    assert "not a Prometheus text exposition" in (s.last_error[srv.url] or "")


def test_an_exposition_of_no_serving_engine_is_down_with_the_reason(serve):
    srv = serve("# TYPE node_load1 gauge\nnode_load1 0.5\n")
    s = sampler({"group": "g", "url": srv.url})
    assert s.read(0.0)["serving"][0]["up"] is False
    assert "no vllm:, sglang:, tgi_ or llamacpp: metric" in (s.last_error[srv.url] or "")


def test_tls_with_a_ca_file_and_a_bearer_token_file(serve, tls_files, tmp_path):
    ca, crt, key = tls_files
    srv = serve(fixture("sglang_docs_tpot"), token="s3cret", tls=(crt, key))
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    good = sampler({"group": "g", "url": srv.url, "ca_file": str(ca), "bearer_token_file": str(token)})
    assert one(good.read(0.0))["up"] is True
    refused = sampler({"group": "g", "url": srv.url, "ca_file": str(ca), "bearer_token": "wrong"})
    assert refused.read(0.0)["serving"][0]["up"] is False
    assert refused.last_error[srv.url] == "HTTP 401: the bearer token was refused"
    untrusted = sampler({"group": "g", "url": srv.url, "bearer_token": "s3cret"})  # system CAs only
    assert untrusted.read(0.0)["serving"][0]["up"] is False
    assert "CERTIFICATE_VERIFY_FAILED" in (untrusted.last_error[srv.url] or "")
    unverified = sampler({"group": "g", "url": srv.url, "bearer_token": "s3cret", "insecure_skip_verify": True})
    assert one(unverified.read(0.0))["up"] is True


def test_a_rotated_token_file_is_read_again(serve, tmp_path):
    srv = serve(fixture("sglang_docs_tpot"), token="new")
    token = tmp_path / "token"
    token.write_text("old")
    s = sampler({"group": "g", "url": srv.url, "bearer_token_file": str(token)})
    assert s.read(0.0)["serving"][0]["up"] is False
    token.write_text("new")
    assert one(s.read(5.0))["up"] is True


def test_every_engine_table_names_metrics_of_its_own_prefix_and_only_schema_fields():
    for engine, m in ENGINES.items():
        names = [*m.requests, *m.prompt_tokens, *m.generation_tokens, *m.running, *m.waiting, *m.kv_usage,
                 *m.prompt_len, *(n for ns in m.latency.values() for n in ns)]  # fmt: skip
        assert names and all(n.startswith(m.prefix) for n in names), engine
    assert set(ServingSampler.fields["serving"]) == set(MEASUREMENTS["serving"].field_index)


def test_the_agent_builds_the_serving_sampler_from_the_config_and_ships_valid_serving_batches(serve):

    reg, m = vllm_registry()
    m["success"].labels("llama", "0", "stop")
    for metric in ("prompt", "ttft", "itl", "prompt_len"):
        m[metric].labels("llama", "0")
    m["running"].labels("llama", "0").set(2)
    srv = serve(generate_latest(reg).decode())
    stop = threading.Event()

    def traffic() -> None:  # requests keep finishing while the agent runs
        while not stop.wait(0.02):
            m["success"].labels("llama", "0", "stop").inc()
            m["ttft"].labels("llama", "0").observe(0.05)
            srv.body = generate_latest(reg).decode()

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    cfg = parse_config(
        {
            "node": "n1",
            "agent": {"cadence_s": 0.2, "flush_s": 0.2, "spool_dir": ""},
            "samplers": {"host": {"enabled": False}, "serving": {"cadence_s": 0.2}},
            "serving": [{"group": "hive0", "url": srv.url}, {"group": "hive1", "url": closed_port_url()}],
        }
    )
    built = build_samplers(cfg)
    assert [b.sampler.name for b in built if b.sampler.name == "serving"] == ["serving"]
    spool = MemorySpool()
    Agent(cfg, [b for b in built if b.sampler.name == "serving"], spool=spool).run(threading.Event(), max_ticks=5)
    stop.set()
    frames = []
    while (entry := spool.peek()) is not None:
        doc = json.loads(gzip.decompress(entry[1]))
        frames.append(batch_frames(BatchIn.model_validate(doc)))  # what the collector accepts
        spool.remove(entry[0])
    serving = [f["serving"] for f in frames if "serving" in f]
    assert serving
    rows = pl.concat(serving, how="diagonal_relaxed")
    up = rows.filter(pl.col("group") == "hive0")
    assert (
        up["up"].all() and up["engine"].unique().to_list() == ["vllm"] and up["model"].unique().to_list() == ["llama"]
    )
    assert up["requests_per_s"].drop_nulls().max() > 0 and up["ttft_count"].drop_nulls().sum() > 0
    down = rows.filter(pl.col("group") == "hive1")
    assert not down["up"].any()


TGI = """# TYPE tgi_request_success counter
tgi_request_success {success}
# TYPE tgi_queue_size gauge
tgi_queue_size 3
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 12
# TYPE tgi_request_input_length histogram
tgi_request_input_length_bucket{{le="512"}} {n}
tgi_request_input_length_bucket{{le="+Inf"}} {n}
tgi_request_input_length_sum {prompt}
tgi_request_input_length_count {n}
# TYPE tgi_request_mean_time_per_token_duration histogram
tgi_request_mean_time_per_token_duration_bucket{{le="0.02"}} {fast}
tgi_request_mean_time_per_token_duration_bucket{{le="0.04"}} {n}
tgi_request_mean_time_per_token_duration_bucket{{le="+Inf"}} {n}
tgi_request_mean_time_per_token_duration_sum 1
tgi_request_mean_time_per_token_duration_count {n}
"""
"""The shape of TGI's exposition (metrics-exporter-prometheus, as router/src/server.rs configures it): counters
without ``_total``, no model label, histograms with the buckets set per metric."""


def test_tgi_counters_without_total_and_a_model_named_in_the_config(serve):
    srv = serve(TGI.format(success=10, n=10, prompt=2000, fast=5))
    s = sampler({"group": "g", "url": srv.url, "model": "bigcode/starcoder"})
    s.read(0.0)
    srv.body = TGI.format(success=20, n=20, prompt=4500, fast=10)
    row = one(s.read(5.0), "bigcode/starcoder")
    assert row["engine"] == "tgi" and row["requests_per_s"] == pytest.approx(2.0)
    assert row["prompt_tokens_per_s"] == pytest.approx(500.0) and row["prompt_tokens_mean"] == pytest.approx(250.0)
    assert row["requests_running"] == 12.0 and row["requests_waiting"] == 3.0
    # 10 per-request mean TPOTs: 5 in (0, 20] ms, 5 in (20, 40] ms: p50 = 20 ms, p90 = 20 + 20 * 4 / 5 ms
    assert row["tpot_count"] == 10 and row["tpot_ms_p50"] == pytest.approx(20.0)
    assert row["tpot_ms_p90"] == pytest.approx(36.0) and row["ttft_ms_p50"] is None and row["ttft_count"] is None


LLAMACPP = """# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total {prompt}
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total {predicted}
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 0
"""
"""llama.cpp server's /metrics (``--metrics``), names and HELP texts as its server prints them (ggml-org/llama.cpp
commit a2df2787 "server : update help metrics processing/deferred")."""


def test_llamacpp_token_rates_and_queue_without_histograms(serve):
    srv = serve(LLAMACPP.format(prompt=6886, predicted=3469))
    s = sampler({"group": "g", "url": srv.url})
    s.read(0.0)
    srv.body = LLAMACPP.format(prompt=7886, predicted=3969)
    row = one(s.read(5.0), None)
    assert row["engine"] == "llamacpp" and row["prompt_tokens_per_s"] == pytest.approx(200.0)
    assert row["generation_tokens_per_s"] == pytest.approx(100.0) and row["requests_running"] == 2.0
    assert row["requests_per_s"] is None and row["ttft_count"] is None  # llama.cpp exposes neither
