"""examples/noisy-neighbor: the server speaks OpenAI streaming, the plan is interventional, and the whole experiment
(real collector, agent, server, llama-benchy, co-tenant, stress runner, analysis) names the co-tenant."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "noisy-neighbor"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"cpu_neighbor_{name}", EXAMPLE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port_file = tmp_path_factory.mktemp("server") / "port"
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "server.py"), "--port", "0", "--port-file", str(port_file), "--token-ms", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not port_file.exists():
            assert proc.poll() is None, "the server exited"
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _sse(url: str, path: str, body: dict) -> list[str]:
    with httpx.stream("POST", url + path, json=body, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return [line for line in r.iter_lines() if line]


def test_chat_stream_sends_one_token_per_chunk_then_usage_then_done(server):
    lines = _sse(
        server,
        "/v1/chat/completions",
        {
            "model": "tiny-cpu-decoder",
            "max_tokens": 5,
            "stream": True,
            "messages": [{"role": "user", "content": "ba be bi"}],
            "stream_options": {"include_usage": True},
        },
    )
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    tokens = [c for c in chunks if c["choices"] and c["choices"][0].get("delta", {}).get("content")]
    assert len(tokens) == 5
    assert all(len(c["choices"][0]["token_ids"]) == 1 and c["object"] == "chat.completion.chunk" for c in tokens)
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}


def test_text_completion_streams_and_answers_whole(server):
    lines = _sse(server, "/v1/completions", {"prompt": "ba be", "max_tokens": 3, "stream": True})
    texts = [json.loads(line[6:])["choices"][0]["text"] for line in lines[:-1]]
    assert len([t for t in texts if t]) == 3
    whole = httpx.post(server + "/v1/completions", json={"prompt": "ba be", "max_tokens": 3}, timeout=30).json()
    assert whole["usage"]["completion_tokens"] == 3
    assert whole["choices"][0]["text"] == "".join(texts)


def test_models_lists_the_decoder(server):
    assert httpx.get(server + "/v1/models", timeout=10).json()["data"][0]["id"] == "tiny-cpu-decoder"


def test_served_tokenizer_counts_the_corpus_like_the_server(server):
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_str(httpx.get(server + "/tokenizer.json", timeout=10).text)
    text = " ".join(httpx.get(server + "/corpus.txt", timeout=10).text.split()[:200])
    body = {"model": "tiny-cpu-decoder", "max_tokens": 1, "messages": [{"role": "user", "content": text}]}
    usage = httpx.post(server + "/v1/chat/completions", json=body, timeout=30).json()["usage"]
    assert usage["prompt_tokens"] == len(tok.encode(text, add_special_tokens=False).ids) == 200


@pytest.mark.parametrize("blocks", [10, 24])
def test_plan_switches_the_cotenant_on_and_off_at_least_three_times(blocks):
    from analysis.stress.plan import load_plan, schedule

    plan = load_plan(EXAMPLE / "plan.toml")
    plan.plan.blocks = blocks
    (step,) = schedule(plan, "t")
    on = np.array([bool(b) for b in step.blocks], dtype=int)
    assert on[0] == 0  # starts quiet
    assert int((np.diff(np.r_[0, on]) == 1).sum()) >= 3
    assert int((np.diff(np.r_[1, on]) == -1).sum()) >= 3


def test_agent_config_maps_server_and_cotenant_to_their_groups(tmp_path):
    from agents.config import load_config

    run = _module("run")
    path = tmp_path / "agent.toml"
    path.write_text(run.agent_toml("http://127.0.0.1:1", "t" * 16, tmp_path / "spool"))
    cfg = load_config(path)
    assert [r["group"] for r in cfg.tenants] == ["victim", "cpuhog"]
    assert cfg.samplers["host"].enabled is True and cfg.samplers["tenants"].enabled is True


@pytest.mark.slow
def test_experiment_names_the_cpu_hog_through_cpu_with_p99_itl_degraded(tmp_path):
    """The whole experiment, short (about 2-3 minutes on 2 cores). 130 s of 5 s windows: attribution needs 20 usable
    victim windows (`attribution.MIN_WINDOWS`), and 100 s gave exactly 20 at best, so one window lost at a run's
    edge skipped attribution (seen once in three clean CI runs: "18 usable victim windows").
    ``--cotenant-nice -10`` gives the co-tenant's session a heavier CPU weight (root; without it the co-tenant gets ~1/(N+1) of the CPU on a host with N busy
    sessions, and on a busy CI host the ITL barely moves: correctly nothing significant, but no test)."""
    pytest.importorskip("llama_benchy")
    out = tmp_path / "findings.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE / "run.py"),
            "--duration-s",
            "130",
            "--cotenant-nice",
            "-10",
            "--workdir",
            str(tmp_path / "run"),
            "--out",
            str(out),
            "--no-check",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = json.loads(out.read_text())
    assert found["antagonist"] == "cpuhog", found
    assert found["significant"] is True, found
    assert found["resource"] == "cpu", found
    assert found["itl_p99_degraded"] is True, found
    assert found["design"] == "interventional", found
    itl = found["itl_ms_by_cotenant_state"]
    assert itl["cotenant_on"]["itl_ms_p50"] > itl["cotenant_off"]["itl_ms_p50"], itl
