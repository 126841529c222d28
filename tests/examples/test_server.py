"""The example victim server (examples/noisy-neighbor/server.py) as a real process over loopback HTTP: its
``/metrics`` speaks vLLM's metric names, labels and buckets, parsed by ``prometheus_client``'s own parser, with
latencies measured the way vLLM measures them; requests beyond ``--max-num-seqs`` really wait; ``--disk-path``
really writes and reads the disk."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.examples.conftest import EXAMPLE

LABELS = {"model_name": "tiny-cpu-decoder", "engine": "0"}
# vLLM v0.11.0 vllm/v1/metrics/loggers.py (PrometheusStatLogger): the families and their types
VLLM_FAMILIES = {
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:request_success": "counter",
    "vllm:request_prompt_tokens": "histogram",
    "vllm:request_generation_tokens": "histogram",
    "vllm:iteration_tokens_total": "histogram",
    "vllm:request_max_num_generation_tokens": "histogram",
    "vllm:request_params_n": "histogram",
    "vllm:request_params_max_tokens": "histogram",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:time_per_output_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
    "vllm:request_inference_time_seconds": "histogram",
    "vllm:request_prefill_time_seconds": "histogram",
    "vllm:request_decode_time_seconds": "histogram",
}
ITL_BOUNDS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0]
TTFT_BOUNDS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
               80.0, 160.0, 640.0, 2560.0]  # fmt: skip
REQUEST_BOUNDS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
                  480.0, 960.0, 1920.0, 7680.0]  # fmt: skip


def scrape(url: str) -> dict[str, dict]:
    """``/metrics`` parsed by prometheus_client: family name -> {"type", "samples": {(name, labels...): value}}."""
    r = httpx.get(url + "/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        samples = {(s.name, *sorted(s.labels.items())): s.value for s in fam.samples}
        out[fam.name] = {"type": fam.type, "samples": samples, "raw": fam.samples}
    return out


def value(fams: dict, family: str, sample: str, **labels: str) -> float:
    key = (sample, *sorted((LABELS | labels).items()))
    return fams[family]["samples"][key]


def bounds(fams: dict, family: str) -> list[float]:
    return [
        float(s.labels["le"]) for s in fams[family]["raw"] if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"
    ]


def complete(url: str, max_tokens: int, prompt: str = "ba be bi", stream: bool = True) -> int:
    """One chat completion; the number of streamed tokens received."""
    body = {"model": "tiny-cpu-decoder", "max_tokens": max_tokens, "stream": stream,
            "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
    if not stream:
        return httpx.post(url + "/v1/chat/completions", json=body, timeout=60).json()["usage"]["completion_tokens"]
    n = 0
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            n += '"token_ids"' in line and '"finish_reason":null' in line
    return n


def test_metrics_carry_vllm_names_types_labels_and_buckets(server_factory):
    srv = server_factory("--token-ms", "1")
    complete(srv.url, 3)
    fams = scrape(srv.url)
    assert {f: fams[f]["type"] for f in VLLM_FAMILIES if f in fams} == VLLM_FAMILIES
    for fam in VLLM_FAMILIES:
        for s in fams[fam]["raw"]:
            assert {k: s.labels[k] for k in LABELS} == LABELS, s
    assert bounds(fams, "vllm:inter_token_latency_seconds") == ITL_BOUNDS
    assert bounds(fams, "vllm:time_per_output_token_seconds") == ITL_BOUNDS
    assert bounds(fams, "vllm:time_to_first_token_seconds") == TTFT_BOUNDS
    for fam in ("e2e_request_latency", "request_queue_time", "request_prefill_time", "request_decode_time"):
        assert bounds(fams, f"vllm:{fam}_seconds") == REQUEST_BOUNDS
    assert bounds(fams, "vllm:request_prompt_tokens") == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
    reasons = {s.labels["finished_reason"] for s in fams["vllm:request_success"]["raw"]}
    assert reasons == {"stop", "length", "abort"}


def test_histogram_counts_match_the_requests_served_and_itl_counts_tokens_minus_one(server_factory):
    srv = server_factory("--token-ms", "1", "--max-num-seqs", "2")
    lengths = [5, 7, 9, 4]
    prompts = ["ba be bi", "ba be bi bo bu", "ba", "ba be"]
    with ThreadPoolExecutor(3) as pool:  # three at once through two slots: one waits
        got = list(pool.map(lambda a: complete(srv.url, *a), zip(lengths[:3], prompts[:3], strict=True)))
    got.append(complete(srv.url, lengths[3], prompts[3], stream=False))
    assert got == lengths
    fams = scrape(srv.url)
    n = len(lengths)
    for fam in ("time_to_first_token", "e2e_request_latency", "request_queue_time", "request_prefill_time",
                "request_decode_time", "request_inference_time"):  # fmt: skip
        assert value(fams, f"vllm:{fam}_seconds", f"vllm:{fam}_seconds_count") == n, fam
    itl = value(fams, "vllm:inter_token_latency_seconds", "vllm:inter_token_latency_seconds_count")
    assert itl == sum(k - 1 for k in lengths) == 21
    assert value(fams, "vllm:time_per_output_token_seconds", "vllm:time_per_output_token_seconds_count") == itl
    assert value(fams, "vllm:request_success", "vllm:request_success_total", finished_reason="length") == n
    assert value(fams, "vllm:request_success", "vllm:request_success_total", finished_reason="abort") == 0
    assert value(fams, "vllm:generation_tokens", "vllm:generation_tokens_total") == sum(lengths)
    prompt_tokens = sum(len(p.split()) for p in prompts)
    assert value(fams, "vllm:prompt_tokens", "vllm:prompt_tokens_total") == prompt_tokens
    assert value(fams, "vllm:request_prompt_tokens", "vllm:request_prompt_tokens_sum") == prompt_tokens
    assert value(fams, "vllm:request_generation_tokens", "vllm:request_generation_tokens_sum") == sum(lengths)
    assert value(fams, "vllm:request_params_max_tokens", "vllm:request_params_max_tokens_count") == n
    # every token of every request is in exactly one engine step
    assert value(fams, "vllm:iteration_tokens_total", "vllm:iteration_tokens_total_sum") == prompt_tokens + sum(lengths)
    # the buckets are cumulative and end at the count
    itl_buckets = [s.value for s in fams["vllm:inter_token_latency_seconds"]["raw"] if s.name.endswith("_bucket")]
    assert itl_buckets == sorted(itl_buckets) and itl_buckets[-1] == itl
    assert value(fams, "vllm:num_requests_running", "vllm:num_requests_running") == 0
    assert value(fams, "vllm:num_requests_waiting", "vllm:num_requests_waiting") == 0


def test_metrics_version_0_12_hides_time_per_output_token_and_adds_the_per_request_tpot(server_factory):
    srv = server_factory("--token-ms", "1", "--metrics-version", "0.12")
    assert [complete(srv.url, k) for k in (5, 9)] == [5, 9]
    fams = scrape(srv.url)
    assert "vllm:time_per_output_token_seconds" not in fams
    assert value(fams, "vllm:inter_token_latency_seconds", "vllm:inter_token_latency_seconds_count") == 4 + 8
    fam = "vllm:request_time_per_output_token_seconds"
    assert fams[fam]["type"] == "histogram" and bounds(fams, fam) == ITL_BOUNDS
    assert value(fams, fam, fam + "_count") == 2  # one per finished request
    # each request's mean ITL, decode time / (tokens - 1): d1 / 4 + d2 / 8 lies between (d1 + d2) / 8 and / 4
    decode = value(fams, "vllm:request_decode_time_seconds", "vllm:request_decode_time_seconds_sum")
    assert decode / 8 <= value(fams, fam, fam + "_sum") <= decode / 4


def test_latencies_add_up_the_way_vllm_measures_them(server_factory):
    """vLLM: ITLs of a request sum to its decode time (first to last token); inference = prefill + decode;
    e2e (arrival to finish) = queue + inference; TTFT (arrival to first token) = queue + prefill."""
    srv = server_factory("--token-ms", "2", "--max-num-seqs", "1")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda k: complete(srv.url, k), [30, 20])) == [30, 20]
    client_s = time.perf_counter() - t0
    fams = scrape(srv.url)

    def total(fam: str) -> float:
        return value(fams, f"vllm:{fam}_seconds", f"vllm:{fam}_seconds_sum")

    assert total("inter_token_latency") == pytest.approx(total("request_decode_time"), abs=1e-6)
    assert total("request_inference_time") == pytest.approx(
        total("request_prefill_time") + total("request_decode_time"), abs=1e-6
    )
    assert total("time_to_first_token") == pytest.approx(
        total("request_queue_time") + total("request_prefill_time"), abs=1e-6
    )
    assert total("e2e_request_latency") == pytest.approx(
        total("request_queue_time") + total("request_inference_time"), abs=0.01
    )
    assert total("e2e_request_latency") <= 2 * client_s  # both ran inside the client's wall time
    assert total("inter_token_latency") / 48 >= 0.001  # 2 ms of CPU per token: at least that much wall clock


def _first_token_then_rest(url: str, max_tokens: int, started: threading.Event) -> int:
    body = {"model": "tiny-cpu-decoder", "max_tokens": max_tokens, "stream": True,
            "messages": [{"role": "user", "content": "ba"}]}  # fmt: skip
    n = 0
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if '"token_ids"' in line and '"finish_reason":null' in line:
                n += 1
                started.set()
    return n


def test_requests_beyond_max_num_seqs_wait_in_the_queue(server_factory):
    srv = server_factory("--token-ms", "3", "--max-num-seqs", "1")
    seen: list[tuple[float, float]] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            f = scrape(srv.url)
            seen.append((value(f, "vllm:num_requests_running", "vllm:num_requests_running"),
                         value(f, "vllm:num_requests_waiting", "vllm:num_requests_waiting")))  # fmt: skip
            time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    started = threading.Event()
    try:
        with ThreadPoolExecutor(3) as pool:
            first = pool.submit(_first_token_then_rest, srv.url, 300, started)  # >= 0.9 s of CPU
            assert started.wait(30)
            rest = list(pool.map(lambda _: complete(srv.url, 10), range(2)))  # sent while the first runs
            assert first.result() == 300 and rest == [10, 10]
    finally:
        done.set()
        poller.join()
    assert max(r for r, _ in seen) == 1  # never more than --max-num-seqs running
    assert max(w for _, w in seen) >= 1
    fams = scrape(srv.url)
    assert value(fams, "vllm:request_queue_time_seconds", "vllm:request_queue_time_seconds_count") == 3
    # the two short ones waited for the long one's remaining ~299 tokens (>= 0.9 s of CPU): 0.5 s is safe
    assert value(fams, "vllm:request_queue_time_seconds", "vllm:request_queue_time_seconds_sum") >= 0.5


def test_a_client_that_leaves_frees_its_slot_and_is_not_observed(server_factory):
    srv = server_factory("--token-ms", "3", "--max-num-seqs", "1")
    body = {"model": "tiny-cpu-decoder", "max_tokens": 2000, "stream": True,
            "messages": [{"role": "user", "content": "ba"}]}  # fmt: skip
    with httpx.stream("POST", srv.url + "/v1/chat/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        for _ in range(5):
            next(lines)
    assert complete(srv.url, 3) == 3  # would wait ~6 s behind the abandoned request if it kept its slot
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        fams = scrape(srv.url)
        if value(fams, "vllm:num_requests_running", "vllm:num_requests_running") == 0:
            break
        time.sleep(0.1)
    assert value(fams, "vllm:num_requests_running", "vllm:num_requests_running") == 0
    assert value(fams, "vllm:e2e_request_latency_seconds", "vllm:e2e_request_latency_seconds_count") == 1
    assert value(fams, "vllm:generation_tokens", "vllm:generation_tokens_total") < 2000


def test_kv_cache_usage_counts_the_tokens_held(server_factory):
    srv = server_factory("--token-ms", "3", "--kv-cache-tokens", "400")
    usage: list[float] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            usage.append(value(scrape(srv.url), "vllm:kv_cache_usage_perc", "vllm:kv_cache_usage_perc"))
            time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        assert complete(srv.url, 300, prompt=" ".join(["ba"] * 20)) == 300  # about a second at 3 ms a token
    finally:
        done.set()
        poller.join()
    held = [u for u in usage if u > 0]
    assert held, usage
    assert min(held) >= 20 / 400 and max(held) <= 320 / 400  # 20 prompt + up to 300 generated of 400
    assert held == sorted(held)  # one request: its cache only grows
    assert value(scrape(srv.url), "vllm:kv_cache_usage_perc", "vllm:kv_cache_usage_perc") == 0.0  # freed


def _proc_io(pid: int) -> dict[str, int]:
    rows = Path(f"/proc/{pid}/io").read_text().split("\n")
    return {k: int(v) for k, v in (r.split(": ") for r in rows if r)}


def test_disk_path_writes_each_requests_kv_cache_and_reads_it_back_from_the_disk(server_factory, tmp_path):
    kv = tmp_path / "kv"
    srv = server_factory("--token-ms", "1", "--disk-path", str(kv), "--kv-offload-mb", "1")
    before = _proc_io(srv.proc.pid)
    assert [complete(srv.url, 9) for _ in range(2)] == [9, 9]
    after = _proc_io(srv.proc.pid)
    health = httpx.get(srv.url + "/health", timeout=10).json()["kv_offload"]
    mib = 2**20
    assert health["bytes_written"] == 2 * mib  # 1 MiB per request
    assert health["bytes_read"] == 2 * mib  # read back in 8 slices of 128 KiB over the 8 decode steps
    assert health["write_s"] > 0 and health["read_s"] > 0
    assert list(kv.iterdir()) == []  # unlinked at once: nothing left behind
    assert health["mode"] in ("O_DIRECT", "buffered+fdatasync+fadvise(DONTNEED)")
    if health["mode"] == "O_DIRECT":  # the block layer saw it: the page cache did not absorb it
        assert after["write_bytes"] - before["write_bytes"] >= 2 * mib
        assert after["read_bytes"] - before["read_bytes"] >= 2 * mib


def test_disk_path_off_by_default(server_factory):
    srv = server_factory("--token-ms", "1")
    assert "kv_offload" not in httpx.get(srv.url + "/health", timeout=10).json()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--disk-path", "/proc/neighborscope-kv"], "--disk-path /proc/neighborscope-kv: cannot create it"),
        (["--disk-path", "{tmp}", "--kv-offload-mb", "0"], "--kv-offload-mb must be positive, got 0"),
        (["--max-num-seqs", "0"], "--max-num-seqs must be at least 1, got 0"),
    ],
)
def test_bad_options_are_one_line_errors(args, message, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    p = subprocess.run([sys.executable, str(EXAMPLE / "server.py"), *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert message in p.stderr and "Traceback" not in p.stderr


def test_server_module_imports_without_side_effects():
    spec = importlib.util.spec_from_file_location("nn_server", EXAMPLE / "server.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["nn_server"] = mod  # dataclasses resolve their annotations through it
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules["nn_server"]
    assert mod.build_1_2_5_buckets(100) == [1, 2, 5, 10, 20, 50, 100]
    assert mod.ITL_BUCKETS == ITL_BOUNDS
