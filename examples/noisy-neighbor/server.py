"""A tiny OpenAI-compatible streaming server whose token generation is real CPU work (no model download).

Endpoints, shaped like vLLM's:

- ``GET  /v1/models``
- ``POST /v1/chat/completions`` and ``POST /v1/completions``: ``stream: true`` answers Server-Sent Events
  (``data: {chunk}`` lines, one token per chunk with its ``token_ids``, a final chunk with ``finish_reason``,
  a usage chunk when ``stream_options.include_usage``, then ``data: [DONE]``); ``stream: false`` one JSON.
  Exactly ``max_tokens`` tokens are generated (no end-of-sequence).
- ``GET /metrics``: Prometheus text exposition with vLLM's own metric names, labels and buckets (below).
- ``GET /corpus.txt``: the seeded word corpus the benchmark builds its prompts from (llama-benchy's
  ``--book-url``), ``GET /tokenizer.json``: the word-level tokenizer of the same vocabulary.
- ``GET /health``.

The "model" is a seeded numpy decoder: every token runs ``layers`` dense layers on a (64, d) state,
single-threaded (BLAS threads pinned to 1), sized at start (thread CPU time, so a busy host does not skew it)
so one token costs ``--token-ms`` of CPU; prefill costs a quarter of a decode step per 64 prompt tokens. A
CPU-hungry neighbour therefore stretches the inter-token latency the way it stretches a real CPU-bound decode loop.

The engine is one thread with vLLM's iteration-level scheduling: requests wait in a FIFO queue until one of
``--max-num-seqs`` running slots is free (``vllm:num_requests_waiting`` counts them), each engine step prefills the
requests it has just scheduled and then decodes one token for every running request, in turn.

``--disk-path DIR`` (off by default) gives every request a disk path, like a KV cache offloaded to local NVMe:
right after its prefill the request's "KV cache" (``--kv-offload-mb`` MiB) is written to ``DIR`` and synced,
then read back a slice before every decode step (the whole cache over the request's tokens), with ``O_DIRECT``
so the page cache does not hide the disk (where the file system refuses ``O_DIRECT``, e.g. tmpfs: buffered
writes, ``fdatasync`` and ``posix_fadvise(DONTNEED)`` before every read). The engine waits for its disk, so a
co-tenant's I/O (fio, ``stress-ng --hdd``) stretches TTFT (the write) and every inter-token latency (the reads).
``DIR`` must be on the disk you want to share; ``/health`` reports the mode and the seconds spent in I/O.

    python examples/noisy-neighbor/server.py --port 8000 --token-ms 20
    python examples/noisy-neighbor/server.py --port 8000 --disk-path /var/tmp/kv --kv-offload-mb 8
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import mmap  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import deque  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse  # noqa: E402
from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MODEL = "tiny-cpu-decoder"
VOCAB_SIZE = 512
ROWS = 64
MAX_MODEL_LEN = 8192


def vocabulary(seed: int = 0) -> list[str]:
    """Seeded pronounceable lowercase words, no punctuation (whitespace tokenisation is exact)."""
    rng = np.random.default_rng([seed, 7])
    cons, vows = "bcdfghjklmnprstvwz", "aeiou"
    words: set[str] = set()
    while len(words) < VOCAB_SIZE:
        n = int(rng.integers(1, 4))
        words.add("".join(cons[rng.integers(len(cons))] + vows[rng.integers(len(vows))] for _ in range(n)))
    return sorted(words)


def corpus_text(vocab: list[str], words: int = 60_000, seed: int = 0) -> str:
    rng = np.random.default_rng([seed, 11])
    idx = rng.integers(0, len(vocab), words)
    lines = [" ".join(vocab[i] for i in idx[k : k + 16]) for k in range(0, words, 16)]
    return "\n".join(lines) + "\n"


def tokenizer_json(vocab: list[str]) -> str:
    """A word-level tokenizer (Hugging Face `tokenizers` format) of the vocabulary, whitespace-split."""
    entries = {"[UNK]": 0} | {w: i + 1 for i, w in enumerate(vocab)}
    doc = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": entries, "unk_token": "[UNK]"},
    }  # fmt: skip
    return json.dumps(doc)


class Decoder:
    """The CPU work behind every token: ``layers`` x tanh((64, d) @ (d, d)), then a projection on the vocab."""

    def __init__(self, vocab: list[str], d: int = 384, token_ms: float = 20.0, seed: int = 0) -> None:
        rng = np.random.default_rng([seed, 3])
        self.vocab = vocab
        self.index = {w: i + 1 for i, w in enumerate(vocab)}
        self.w = (rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32)
        self.emb = rng.standard_normal((VOCAB_SIZE + 1, d)).astype(np.float32)
        self.out = rng.standard_normal((d, VOCAB_SIZE + 1)).astype(np.float32)
        self.state = np.zeros((ROWS, d), dtype=np.float32)
        self.layers = 1
        self.layers = self._calibrate(token_ms)

    def _layer(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x @ self.w)

    def _calibrate(self, token_ms: float) -> int:
        x = self.state + self.emb[1]
        for _ in range(20):
            x = self._layer(x)
        best = float("inf")
        for _ in range(5):  # CPU time of this thread: right on a busy host too
            t = time.thread_time()
            for _ in range(50):
                x = self._layer(x)
            best = min(best, (time.thread_time() - t) / 50)
        return max(1, round(token_ms / 1000 / best))

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, 0) for w in text.split()]

    def prefill(self, ids: list[int]) -> np.ndarray:
        x = self.state.copy()
        for k in range(0, max(len(ids), 1), ROWS):
            chunk = ids[k : k + ROWS] or [0]
            x[: len(chunk)] += self.emb[chunk]
            for _ in range(max(1, self.layers // 4)):
                x = self._layer(x)
        return x

    def step(self, x: np.ndarray, last: int) -> tuple[np.ndarray, int]:
        x = x + self.emb[last]
        for _ in range(self.layers):
            x = self._layer(x)
        logits = x[0] @ self.out
        logits[0] = -np.inf
        return x, int(np.argmax(logits))


# --- vLLM's metrics ------------------------------------------------------------------------------------------------
# Names, help texts, labels (model_name, engine) and bucket boundaries copied from vLLM's V1 engine,
# vllm/v1/metrics/loggers.py (PrometheusStatLogger.__init__ and .record), in two layouts (--metrics-version):
# - "0.11" (default): the 0.11 series (the file's comments: "Deprecated in 0.11 - Renamed as
#   vllm:inter_token_latency_seconds", "With 0.11.x you can enable with --show-hidden-metrics-for-version=0.10"):
#   vllm:time_per_output_token_seconds is still shown, observed with the same inter-token latencies as
#   vllm:inter_token_latency_seconds;
# - "0.12": the 0.12 series ("With 0.12.x you can enable with --show-hidden-metrics-for-version=0.11"):
#   vllm:time_per_output_token_seconds hidden; vllm:request_time_per_output_token_seconds added (per finished
#   request: decode time / (generated tokens - 1), vllm/v1/metrics/stats.py).
# Series both hide by default are not shown (vllm:gpu_cache_usage_perc, vllm:gpu_prefix_cache_*). Left out because
# this server has no such feature: prefix caching (vllm:prefix_cache_*), preemption (vllm:num_preemptions),
# speculative decoding, LoRA, multimodal caches, sleep mode, cache_config_info.
# How vLLM measures (vllm/v1/metrics/stats.py), and so does this server: TTFT from the request's arrival to its first
# token; ITL between consecutive tokens of one request; queue time from entering the engine's waiting queue to being
# scheduled (here the queue is entered on arrival); prefill time from scheduled to first token; decode time from
# first to last token; inference time from scheduled to last token; e2e from arrival to finish. Requests aborted
# because the client left are not observed.
METRICS_VERSIONS = ("0.11", "0.12")

TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
                80.0, 160.0, 640.0, 2560.0]  # fmt: skip
ITL_BUCKETS = [
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
]
REQUEST_LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                           240.0, 480.0, 960.0, 1920.0, 7680.0]  # fmt: skip
ITERATION_TOKENS_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
FINISH_REASONS = ("stop", "length", "abort")  # vllm.v1.engine.FinishReason, str()


def build_1_2_5_buckets(max_value: int) -> list[int]:
    """vLLM's token-count buckets: 1, 2, 5, 10, 20, 50, ... up to ``max_value``."""
    out: list[int] = []
    exponent = 0
    while True:
        for m in (1, 2, 5):
            value = m * 10**exponent
            if value > max_value:
                return out
            out.append(value)
        exponent += 1


class VllmMetrics:
    """vLLM's V1 Prometheus metrics in a registry of their own, bound to one (model_name, engine) pair."""

    def __init__(
        self, model_name: str = MODEL, engine: str = "0", max_model_len: int = MAX_MODEL_LEN, version: str = "0.11"
    ) -> None:
        if version not in METRICS_VERSIONS:
            raise ValueError(f"--metrics-version must be one of {', '.join(METRICS_VERSIONS)}, got {version!r}")
        self.version = version
        self.registry = CollectorRegistry()
        names, values, reg = ["model_name", "engine"], [model_name, engine], self.registry

        def gauge(name: str, doc: str) -> Any:
            return Gauge(name, doc, names, registry=reg).labels(*values)

        def counter(name: str, doc: str) -> Any:
            return Counter(name, doc, names, registry=reg).labels(*values)

        def hist(name: str, doc: str, buckets: list[float] | list[int]) -> Any:
            return Histogram(name, doc, names, buckets=buckets, registry=reg).labels(*values)

        tok_buckets = build_1_2_5_buckets(max_model_len)
        self.running = gauge("vllm:num_requests_running", "Number of requests in model execution batches.")
        self.waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
        self.kv_cache_usage = gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter("vllm:generation_tokens", "Number of generation tokens processed.")
        success = Counter("vllm:request_success", "Count of successfully processed requests.",
                          [*names, "finished_reason"], registry=reg)  # fmt: skip
        self.request_success = {r: success.labels(*values, r) for r in FINISH_REASONS}
        self.request_prompt_tokens = hist("vllm:request_prompt_tokens", "Number of prefill tokens processed.",
                                          tok_buckets)  # fmt: skip
        self.request_generation_tokens = hist("vllm:request_generation_tokens",
                                              "Number of generation tokens processed.", tok_buckets)  # fmt: skip
        self.iteration_tokens = hist("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
                                     ITERATION_TOKENS_BUCKETS)  # fmt: skip
        self.max_num_generation_tokens = hist("vllm:request_max_num_generation_tokens",
                                              "Histogram of maximum number of requested generation tokens.",
                                              tok_buckets)  # fmt: skip
        self.params_n = hist("vllm:request_params_n", "Histogram of the n request parameter.", [1, 2, 5, 10, 20])
        self.params_max_tokens = hist("vllm:request_params_max_tokens",
                                      "Histogram of the max_tokens request parameter.", tok_buckets)  # fmt: skip
        self.ttft = hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                         TTFT_BUCKETS)  # fmt: skip
        self.tpot = None  # hidden in 0.12
        if version == "0.11":
            self.tpot = hist("vllm:time_per_output_token_seconds",
                             "Histogram of time per output token in seconds."
                             "DEPRECATED: Use vllm:inter_token_latency_seconds instead.", ITL_BUCKETS)  # fmt: skip
        self.itl = hist("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", ITL_BUCKETS)
        self.request_tpot = None  # added in 0.12
        if version == "0.12":
            self.request_tpot = hist("vllm:request_time_per_output_token_seconds",
                                     "Histogram of time_per_output_token_seconds per request.",
                                     ITL_BUCKETS)  # fmt: skip
        self.e2e = hist("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                        REQUEST_LATENCY_BUCKETS)  # fmt: skip
        self.queue_time = hist("vllm:request_queue_time_seconds",
                               "Histogram of time spent in WAITING phase for request.",
                               REQUEST_LATENCY_BUCKETS)  # fmt: skip
        self.inference_time = hist("vllm:request_inference_time_seconds",
                                   "Histogram of time spent in RUNNING phase for request.",
                                   REQUEST_LATENCY_BUCKETS)  # fmt: skip
        self.prefill_time = hist("vllm:request_prefill_time_seconds",
                                 "Histogram of time spent in PREFILL phase for request.",
                                 REQUEST_LATENCY_BUCKETS)  # fmt: skip
        self.decode_time = hist("vllm:request_decode_time_seconds",
                                "Histogram of time spent in DECODE phase for request.",
                                REQUEST_LATENCY_BUCKETS)  # fmt: skip

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


# --- the disk path ---------------------------------------------------------------------------------------------------

ALIGN = 4096  # O_DIRECT wants offsets, lengths and buffer addresses aligned to the logical block size


class KvOffload:
    """Each request's "KV cache" written to ``directory`` after prefill, read back a slice per decode step."""

    def __init__(self, directory: Path, mib: float) -> None:
        if mib <= 0:
            raise ValueError(f"--kv-offload-mb must be positive, got {mib:g}")
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"--disk-path {directory}: cannot create it ({exc.strerror})") from None
        if not os.access(directory, os.W_OK):
            raise ValueError(f"--disk-path {directory}: not writable")
        self.dir = directory
        self.nbytes = max(ALIGN, -(-int(mib * 2**20) // ALIGN) * ALIGN)
        self.buf = mmap.mmap(-1, self.nbytes)  # page-aligned: usable with O_DIRECT
        self.direct = self._probe_direct()
        self.write_s = 0.0
        self.read_s = 0.0
        self.bytes_written = 0
        self.bytes_read = 0
        self.lock = threading.Lock()

    @property
    def mode(self) -> str:
        return "O_DIRECT" if self.direct else "buffered+fdatasync+fadvise(DONTNEED)"

    def _probe_direct(self) -> bool:
        if not hasattr(os, "O_DIRECT"):
            return False
        probe = self.dir / f".probe-{uuid.uuid4().hex}"
        try:
            fd = os.open(probe, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
        except OSError:
            return False
        try:
            os.pwrite(fd, memoryview(self.buf)[:ALIGN], 0)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)

    def write(self, rid: str, state: np.ndarray) -> int:
        """Write the cache (the prefill state's bytes, tiled), sync it, drop it from the page cache: an open fd."""
        t = time.perf_counter()
        raw = np.frombuffer(self.buf, dtype=np.uint8)
        src = np.frombuffer(state.tobytes(), dtype=np.uint8)
        raw[:] = np.resize(src, raw.size)
        path = self.dir / f"{rid}.kv"
        flags = os.O_CREAT | os.O_RDWR | os.O_TRUNC | (os.O_DIRECT if self.direct else 0)
        fd = os.open(path, flags, 0o600)
        path.unlink()  # the open fd keeps the blocks; nothing is left behind if the server dies
        view = memoryview(self.buf)
        off = 0
        while off < self.nbytes:
            off += os.pwrite(fd, view[off : off + 2**20], off)
        os.fdatasync(fd)
        if not self.direct:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        with self.lock:
            self.write_s += time.perf_counter() - t
            self.bytes_written += self.nbytes
        return fd

    def read_slice(self, fd: int, step: int, steps: int) -> None:
        """Read slice ``step`` of ``steps`` back (aligned, wrapping around)."""
        t = time.perf_counter()
        size = min(self.nbytes, max(ALIGN, -(-self.nbytes // max(steps, 1) // ALIGN) * ALIGN))
        off = (step * size) % self.nbytes
        size = min(size, self.nbytes - off)
        if not self.direct:
            os.posix_fadvise(fd, off, size, os.POSIX_FADV_DONTNEED)
        os.preadv(fd, [memoryview(self.buf)[:size]], off)
        with self.lock:
            self.read_s += time.perf_counter() - t
            self.bytes_read += size

    def health(self) -> dict[str, Any]:
        with self.lock:
            return {"dir": str(self.dir), "mode": self.mode, "mib_per_request": self.nbytes / 2**20,
                    "write_s": round(self.write_s, 6), "read_s": round(self.read_s, 6),
                    "bytes_written": self.bytes_written, "bytes_read": self.bytes_read}  # fmt: skip


# --- the engine ------------------------------------------------------------------------------------------------------


@dataclass
class Req:
    rid: str
    ids: list[int]
    max_tokens: int
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue
    arrival: float = field(default_factory=time.monotonic)
    scheduled: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    generated: int = 0
    aborted: bool = False
    x: np.ndarray | None = None
    last: int = 1
    kv_fd: int | None = None


class Engine:
    """One engine thread: a FIFO waiting queue, at most ``max_num_seqs`` running requests, one token each per step."""

    def __init__(
        self,
        dec: Decoder,
        metrics: VllmMetrics,
        max_num_seqs: int = 4,
        kv_cache_tokens: int = 16384,
        offload: KvOffload | None = None,
    ) -> None:
        self.dec, self.metrics, self.max_num_seqs, self.kv_cache_tokens = dec, metrics, max_num_seqs, kv_cache_tokens
        self.offload = offload
        self.waiting: deque[Req] = deque()
        self.running: list[Req] = []
        self.cond = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, name="engine", daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.thread.join(10)

    def submit(self, req: Req) -> None:
        with self.cond:
            self.waiting.append(req)
            self.metrics.waiting.set(len(self.waiting))
            self.cond.notify_all()

    def abort(self, req: Req) -> None:
        req.aborted = True

    def _emit(self, req: Req, item: tuple) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is closed: the server is going down
            req.loop.call_soon_threadsafe(req.out.put_nowait, item)

    def _publish(self) -> None:
        m = self.metrics
        m.running.set(len(self.running))
        m.waiting.set(len(self.waiting))
        used = sum(len(r.ids) + r.generated for r in self.running)
        m.kv_cache_usage.set(min(1.0, used / self.kv_cache_tokens))

    def _finish(self, req: Req, reason: str) -> None:
        if req.kv_fd is not None:
            os.close(req.kv_fd)
            req.kv_fd = None
        if reason == "abort":
            return
        now = time.monotonic()
        m = self.metrics
        m.request_success[reason].inc()
        m.e2e.observe(now - req.arrival)
        m.queue_time.observe(req.scheduled - req.arrival)
        m.prefill_time.observe(req.first_token - req.scheduled)
        m.inference_time.observe(req.last_token - req.scheduled)
        m.decode_time.observe(req.last_token - req.first_token)
        m.request_prompt_tokens.observe(len(req.ids))
        m.request_generation_tokens.observe(req.generated)
        if m.request_tpot is not None:  # the prefill's token is not a decode step
            m.request_tpot.observe((req.last_token - req.first_token) / (req.generated - 1) if req.generated > 1 else 0)
        m.params_max_tokens.observe(req.max_tokens)
        self._emit(req, ("end", reason))

    def _loop(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a dead engine must not look like an idle one
            self.error = f"{type(exc).__name__}: {exc}"
            print(f"engine failed: {self.error}", file=sys.stderr, flush=True)
            with self.cond:
                for req in [*self.running, *self.waiting]:
                    self._emit(req, ("error", self.error))
                self.running.clear()
                self.waiting.clear()

    def _run(self) -> None:
        dec, m = self.dec, self.metrics
        while True:
            with self.cond:
                while not self.stopping and not self.waiting and not self.running:
                    self.cond.wait()
                if self.stopping:
                    return
                new: list[Req] = []
                while self.waiting and len(self.running) + len(new) < self.max_num_seqs:
                    req = self.waiting.popleft()
                    if not req.aborted:
                        req.scheduled = time.monotonic()
                        new.append(req)
                self.running.extend(new)
                self._publish()
            step_tokens = 0
            for req in new:  # prefill, then (as the same step) the first token
                req.x = dec.prefill(req.ids)
                req.last = req.ids[-1] if req.ids else 1
                step_tokens += len(req.ids)
                m.prompt_tokens.inc(len(req.ids))
                m.max_num_generation_tokens.observe(req.max_tokens)
                m.params_n.observe(1)
                if self.offload is not None:
                    req.kv_fd = self.offload.write(req.rid, req.x)
            done: list[tuple[Req, str]] = []
            for req in list(self.running):
                if req.aborted:
                    done.append((req, "abort"))
                    continue
                if self.offload is not None and req.kv_fd is not None and req.generated > 0:
                    self.offload.read_slice(req.kv_fd, req.generated - 1, req.max_tokens - 1)
                req.x, req.last = dec.step(req.x, req.last)
                now = time.monotonic()
                if req.first_token is None:
                    req.first_token = now
                    m.ttft.observe(now - req.arrival)
                else:
                    m.itl.observe(now - req.last_token)
                    if m.tpot is not None:
                        m.tpot.observe(now - req.last_token)
                req.last_token = now
                req.generated += 1
                step_tokens += 1
                m.generation_tokens.inc()
                self._emit(req, ("token", req.last, " " + dec.vocab[req.last - 1]))
                if req.generated >= req.max_tokens:
                    done.append((req, "length"))
            m.iteration_tokens.observe(step_tokens)
            with self.cond:  # the gauges move before the clients hear "end"
                for req, _ in done:
                    self.running.remove(req)
                self._publish()
                for req, reason in done:
                    self._finish(req, reason)

    def health(self) -> dict[str, Any]:
        with self.cond:
            doc: dict[str, Any] = {"running": len(self.running), "waiting": len(self.waiting),
                                   "max_num_seqs": self.max_num_seqs}  # fmt: skip
        if self.offload is not None:
            doc["kv_offload"] = self.offload.health()
        return doc


def _prompt_text(body: dict[str, Any], chat: bool) -> str:
    if chat:
        parts = []
        for m in body.get("messages") or []:
            c = m.get("content")
            if isinstance(c, list):
                c = " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            parts.append(str(c or ""))
        return " ".join(parts)
    p = body.get("prompt", "")
    return " ".join(p) if isinstance(p, list) else str(p)


def create_app(
    dec: Decoder,
    corpus: str,
    tokenizer: str,
    *,
    max_num_seqs: int = 4,
    kv_cache_tokens: int = 16384,
    offload: KvOffload | None = None,
    metrics_version: str = "0.11",
) -> FastAPI:
    metrics = VllmMetrics(version=metrics_version)
    engine = Engine(dec, metrics, max_num_seqs=max_num_seqs, kv_cache_tokens=kv_cache_tokens, offload=offload)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            engine.stop()

    app = FastAPI(title="noisy-neighbor tiny decoder", lifespan=lifespan)
    app.state.engine = engine

    @app.get("/health")
    def health() -> Response:
        doc = {"status": "ok" if engine.error is None else "engine failed", "layers": dec.layers} | engine.health()
        if engine.error is not None:
            doc["error"] = engine.error
        return JSONResponse(doc, 200 if engine.error is None else 503)

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "neighborscope",
                                            "max_model_len": MAX_MODEL_LEN}]}  # fmt: skip

    @app.get("/corpus.txt")
    def corpus_txt() -> PlainTextResponse:
        return PlainTextResponse(corpus)

    @app.get("/tokenizer.json")
    def tokenizer_file() -> Response:
        return Response(tokenizer, media_type="application/json")

    async def token_stream(req: Req) -> AsyncIterator[tuple[int, str]]:
        """The request's tokens as the engine makes them; leaving early (client gone) aborts it in the engine."""
        engine.submit(req)
        finished = False
        try:
            while True:
                item = await req.out.get()
                if item[0] == "token":
                    yield item[1], item[2]
                elif item[0] == "end":
                    finished = True
                    return
                else:
                    raise RuntimeError(f"engine failed: {item[1]}")
        finally:
            if not finished:
                engine.abort(req)

    def bad_request(msg: str) -> JSONResponse:
        return JSONResponse({"error": {"message": msg, "type": "invalid_request_error"}}, 400)

    async def completions(request: Request, chat: bool) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return bad_request("body is not JSON")
        if not isinstance(body, dict):
            return bad_request("body is not a JSON object")
        try:
            n = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        except (TypeError, ValueError):
            return bad_request("max_tokens is not an integer")
        if engine.error is not None:
            return JSONResponse({"error": {"message": engine.error, "type": "server_error"}}, 503)
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        obj = "chat.completion" if chat else "text_completion"
        ids = dec.encode(_prompt_text(body, chat))
        req = Req(rid, ids, max(1, min(n, 4096)), asyncio.get_running_loop(), asyncio.Queue())
        toks = token_stream(req)
        if not body.get("stream"):
            out = [t async for t in toks]
            text = "".join(t for _, t in out)
            choice: dict[str, Any] = {"index": 0, "finish_reason": "length", "token_ids": [i for i, _ in out]}
            choice |= {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
            return JSONResponse({"id": rid, "object": obj, "created": created, "model": MODEL, "choices": [choice],
                                 "usage": {"prompt_tokens": len(ids), "completion_tokens": len(out),
                                           "total_tokens": len(ids) + len(out)}})  # fmt: skip
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunk_obj = obj + ".chunk" if chat else obj

        async def sse() -> AsyncIterator[str]:
            def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
                doc = {"id": rid, "object": chunk_obj, "created": created, "model": MODEL, "choices": choices, **extra}
                return "data: " + json.dumps(doc, separators=(",", ":")) + "\n\n"

            if chat:
                yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                              "finish_reason": None}])  # fmt: skip
            count = 0
            try:
                async for tid, text in toks:
                    count += 1
                    c: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": None, "token_ids": [tid]}
                    c |= {"delta": {"content": text}} if chat else {"text": text}
                    yield chunk([c])
            finally:
                await toks.aclose()
            end: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": "length"}
            end |= {"delta": {}} if chat else {"text": ""}
            yield chunk([end])
            if usage:
                yield chunk([], usage={"prompt_tokens": len(ids), "completion_tokens": count,
                                       "total_tokens": len(ids) + count})  # fmt: skip
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await completions(request, chat=True)

    @app.post("/v1/completions")
    async def text_completions(request: Request) -> Response:
        return await completions(request, chat=False)

    return app


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000, help="0 = any free port (see --port-file)")
    ap.add_argument("--port-file", type=Path, default=None, help="write the bound port here once listening")
    ap.add_argument("--token-ms", type=float, default=20.0, help="CPU time of one token on an idle core")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-num-seqs", type=int, default=4,
                    help="running requests at most (vLLM's --max-num-seqs); the rest wait in the queue")  # fmt: skip
    ap.add_argument("--kv-cache-tokens", type=int, default=16384,
                    help="KV-cache capacity in tokens (vllm:kv_cache_usage_perc = tokens held / this)")  # fmt: skip
    ap.add_argument("--disk-path", type=Path, default=None,
                    help="offload every request's KV cache to this directory (O_DIRECT where the file system allows) "
                    "and read it back during decode: a disk path a co-tenant's I/O can slow (default: off)",
                    )  # fmt: skip
    ap.add_argument("--kv-offload-mb", type=float, default=4.0,
                    help="MiB of KV cache written per request and read back over its decode (with --disk-path)",
                    )  # fmt: skip
    ap.add_argument("--metrics-version", choices=METRICS_VERSIONS, default="0.11",
                    help="which vLLM release's /metrics layout to expose (0.12: time_per_output_token hidden, "
                    "request_time_per_output_token added)")  # fmt: skip
    args = ap.parse_args(argv)
    if args.max_num_seqs < 1:
        ap.error(f"--max-num-seqs must be at least 1, got {args.max_num_seqs}")
    if args.kv_cache_tokens < 1:
        ap.error(f"--kv-cache-tokens must be at least 1, got {args.kv_cache_tokens}")
    offload = None
    if args.disk_path is not None:
        try:
            offload = KvOffload(args.disk_path, args.kv_offload_mb)
        except ValueError as exc:
            ap.error(str(exc))

    import uvicorn

    vocab = vocabulary(args.seed)
    dec = Decoder(vocab, token_ms=args.token_ms, seed=args.seed)
    app = create_app(dec, corpus_text(vocab, seed=args.seed), tokenizer_json(vocab), max_num_seqs=args.max_num_seqs,
                     kv_cache_tokens=args.kv_cache_tokens, offload=offload,
                     metrics_version=args.metrics_version)  # fmt: skip
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    if args.port_file is not None:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(str(sock.getsockname()[1]))
        tmp.replace(args.port_file)
    disk = (
        ""
        if offload is None
        else f", KV offload {offload.nbytes / 2**20:g} MiB/request to {offload.dir} ({offload.mode})"
    )
    print(
        f"noisy-neighbor server: {dec.layers} layer(s) per token, {args.max_num_seqs} running at most{disk} on "
        f"http://{args.host}:{sock.getsockname()[1]}",
        flush=True,
    )
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


if __name__ == "__main__":
    main()
