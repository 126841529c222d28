"""Step-based simulation of one LLM server under a closed-loop benchmark client (SGLang-like).

Mechanism (one Python iteration per engine step, ~10k steps per 640-prompt run; everything per token is
numpy):

- The client keeps ``max_concurrency`` requests in flight (``--request-rate inf``): a request is sent
  the moment an earlier one finishes (all at t = 0 at first), until ``num_prompts`` are sent or the
  dispatch window closes.
- Every engine step runs one decode token for each running request and up to ``chunk_tokens`` of
  queued prefill (chunked prefill, requests FIFO, several may share a chunk).
- Step time = ``decode_ms(n) * f_decode + prefill_ms(tokens, n) * f_prefill`` times a lognormal jitter,
  where ``f_*`` come from the interference pressure at that second (`Pressure`). A prefill chunk
  stalls every running request: that is what makes ITL's long tail (p99) in seed 000.
- A request's first token is emitted at the end of the step that finishes its prefill; then one
  token per step. ITL list = durations of the following ``output_tokens - 1`` steps.

Interference (`Pressure`, per second of the run, dimensionless):

- Admitting a request (its first prefill chunk) costs host work, ``ADMIT_MS`` plus what contention adds:
  this lands on exactly the steps that make the p99 ITL, so p99 moves ~3x more than throughput (as in
  seed 000: -2 % tok/s, +6 % p99 ITL).
- ``pcie``: prompt uploads queue behind the antagonist on the shared switch: admission + 700 ms * p,
  prefill × (1 + 0.3 p).
- ``cpu``: scheduler / tokenizer threads wait in the run queue: admission + 900 ms * p,
  prefill × (1 + 0.2 p), decode × (1 + 0.05 p), jitter sigma × (1 + 6 p).
- ``thermal`` / ``power``: clocks drop by a factor 1 / (1 + p); compute-bound prefill slows fully,
  memory-bound decode by 0.25 p.
- ``memory_bandwidth``: the host threads (scheduler, tokenizer, sampling, KV bookkeeping) stall on DRAM:
  admission + 500 ms * p, prefill × (1 + 0.25 p), decode × (1 + 0.1 p), jitter sigma × (1 + 2 p).
- ``memory`` (reclaim): host threads fault their working set back in: admission + 1200 ms * p,
  prefill × (1 + 0.05 p), decode × (1 + 0.03 p), jitter sigma × (1 + 8 p).
- ``storage_io``: prompt-cache / KV-offload reads and token logs queue on the disk: admission + 1500 ms * p,
  decode × (1 + 0.02 p), jitter sigma × (1 + 3 p).
- ``network``: KV transfers and collectives wait on the shared NIC: admission + 400 ms * p,
  prefill × (1 + 0.15 p), decode × (1 + 0.1 p), jitter sigma × (1 + 3 p).

The victim's own load may drift (`telemetry.sim.scenario.LoadDrift`): ``concurrency`` caps the requests in
flight per second (the client adds requests when it rises, lets them drain when it falls), ``input_scale``
scales each prompt's length at dispatch and ``step_scale`` the decode and prefill time of each step.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

# Calibrated to seed 000 (Qwen3.5-397B FP8, TP8 on 8 MI300X, ISL 8192 / OSL 1024, concurrency 64).
DECODE_BASE_MS = 19.3
DECODE_PER_REQ_MS = 0.365
PREFILL_US_PER_TOKEN = 27.0
PREFILL_US_PER_TOKEN_PER_RUNNING = 0.6
CHUNK_TOKENS = 5376
JITTER_SIGMA = 0.035
CLIENT_LATENCY_S = 0.004

ADMIT_MS = 6.0  # host work when a request is first scheduled (tokenize, schedule, copy prompt)

# how much of each pressure reaches (prefill factor, decode factor, admission ms per unit, jitter factor)
_WEIGHTS = {
    "pcie": (0.30, 0.0, 700.0, 0.0),
    "cpu": (0.20, 0.05, 900.0, 6.0),
    "thermal": (1.0, 0.25, 0.0, 0.0),
    "power": (1.0, 0.25, 0.0, 0.0),
    "memory_bandwidth": (0.25, 0.10, 500.0, 2.0),
    "memory": (0.05, 0.03, 1200.0, 8.0),
    "storage_io": (0.0, 0.02, 1500.0, 3.0),
    "network": (0.15, 0.10, 400.0, 3.0),
}


@dataclass(frozen=True)
class Pressure:
    """Interference pressure per second of a run, one array per resource (missing = 0)."""

    by_resource: dict[str, np.ndarray] = field(default_factory=dict)

    def factors(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(prefill factor, decode factor, admission ms, jitter factor) per second, length ``n``
        (the last value repeats past the arrays' end)."""
        f_pre, f_dec, admit, f_jit = np.ones(n), np.ones(n), np.full(n, ADMIT_MS), np.ones(n)
        for res, arr in self.by_resource.items():
            a = _fit(arr, n)
            w_pre, w_dec, w_adm, w_jit = _WEIGHTS[res]
            f_pre += w_pre * a
            f_dec += w_dec * a
            admit += w_adm * a
            f_jit += w_jit * a
        return f_pre, f_dec, admit, f_jit


def _fit(arr: np.ndarray, n: int) -> np.ndarray:
    if len(arr) >= n:
        return np.asarray(arr[:n], dtype=float)
    if len(arr) == 0:
        return np.zeros(n)
    return np.concatenate([arr, np.full(n - len(arr), arr[-1])]).astype(float)


@dataclass(frozen=True)
class Requests:
    """The client's requests of a run (lengths drawn once per seed, shared by counterfactual runs)."""

    input_tokens: np.ndarray
    output_tokens: np.ndarray


def draw_requests(rng: np.random.Generator, n: int, input_len: int, output_len: int, range_ratio: float) -> Requests:
    """SGLang random dataset lengths: uniform integers in ``[len * range_ratio, len]``."""
    isl = rng.integers(int(input_len * range_ratio), input_len + 1, size=n)
    osl = rng.integers(max(1, int(output_len * range_ratio)), output_len + 1, size=n)
    return Requests(isl.astype(np.int64), osl.astype(np.int64))


@dataclass
class ServingResult:
    """Times are seconds from the run's start (the first dispatch).

    Per request (arrays indexed in dispatch order, length = requests sent): ``start_s``, ``ttft_s``,
    ``e2e_s``, ``input_tokens``, ``output_tokens``, ``first_step``. Per step: ``step_end_s``,
    ``step_s``, ``step_decode`` (requests that got a token), ``step_prefill_tokens``.
    ``itls(i)`` gives request i's inter-token latencies (s).
    """

    start_s: np.ndarray
    ttft_s: np.ndarray
    e2e_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    first_step: np.ndarray
    step_end_s: np.ndarray
    step_s: np.ndarray
    step_decode: np.ndarray
    step_prefill_tokens: np.ndarray

    @property
    def n(self) -> int:
        return len(self.start_s)

    @property
    def duration_s(self) -> float:
        return float((self.start_s + self.e2e_s).max()) if self.n else 0.0

    def itls(self, i: int) -> np.ndarray:
        a = int(self.first_step[i])
        return self.step_s[a + 1 : a + int(self.output_tokens[i])]

    def all_itls(self) -> np.ndarray:
        """Every ITL of every request, concatenated (s)."""
        idx = (
            np.concatenate(
                [
                    np.arange(int(f) + 1, int(f) + int(o))
                    for f, o in zip(self.first_step, self.output_tokens, strict=True)
                ]
            )
            if self.n
            else np.zeros(0, dtype=np.int64)
        )
        return self.step_s[idx]

    def tokens_per_second(self, seconds: int) -> tuple[np.ndarray, np.ndarray]:
        """(decode tokens, prefill tokens) per whole second of the run, length ``seconds``."""
        sec = np.minimum(self.step_end_s.astype(np.int64), seconds - 1)
        dec = np.bincount(sec, weights=self.step_decode + 0.0, minlength=seconds)[:seconds]
        pre = np.bincount(sec, weights=self.step_prefill_tokens + 0.0, minlength=seconds)[:seconds]
        return dec, pre


def simulate_serving(
    requests: Requests,
    max_concurrency: int,
    dispatch_window_s: float,
    pressure: Pressure,
    rng: np.random.Generator,
    chunk_tokens: int | None = None,
    concurrency: np.ndarray | None = None,
    input_scale: np.ndarray | None = None,
    step_scale: np.ndarray | None = None,
) -> ServingResult:
    """Run the engine until every dispatched request finished (see module docstring).

    ``requests`` caps how many can be sent; none is sent after ``dispatch_window_s``. ``rng`` draws the
    step jitter (pass a generator seeded the same way to compare counterfactuals). ``concurrency`` (per second
    of the run) caps the requests in flight instead of ``max_concurrency``; ``input_scale`` (per second) scales
    the input length of a request dispatched in that second; ``step_scale`` (per second) multiplies the step time
    (the server's own slow drift).
    """
    chunk_tokens = chunk_tokens or CHUNK_TOKENS
    horizon = int(min(dispatch_window_s, 3 * 86400)) + 3600
    f_pre, f_dec, admit_ms, f_jit = pressure.factors(horizon)
    cap = (
        np.full(horizon, max_concurrency, dtype=np.int64)
        if concurrency is None
        else np.maximum(np.round(_fit(concurrency, horizon)), 1).astype(np.int64)
    )
    osl = requests.output_tokens
    isl = requests.input_tokens.copy()
    scale = None if input_scale is None else _fit(input_scale, horizon)
    if step_scale is not None:
        f_dec = f_dec * _fit(step_scale, horizon)
        f_pre = f_pre * _fit(step_scale, horizon)
    total = len(isl)
    jit = rng.standard_normal(200_000)
    start = np.full(total, np.nan)
    first_step = np.full(total, -1, dtype=np.int64)
    ttft_end = np.full(total, np.nan)
    queue: deque[list[int]] = deque()  # [request, remaining prefill tokens]
    finishing: dict[int, int] = {}
    sent = 0

    def dispatch(at: float) -> None:
        nonlocal sent
        if scale is not None:
            isl[sent] = max(1, round(float(isl[sent]) * scale[min(int(at), horizon - 1)]))
        start[sent] = at
        queue.append([sent, int(isl[sent])])
        sent += 1

    for _ in range(min(int(cap[0]), total)):
        dispatch(0.0)
    t = CLIENT_LATENCY_S
    ends: list[float] = []
    durs: list[float] = []
    decs: list[int] = []
    pres: list[int] = []
    running = 0
    k = 0
    while queue or running:
        budget = chunk_tokens
        done_prefill: list[int] = []
        ptoks = 0
        admitted = 0
        while queue and budget > 0:
            head = queue[0]
            if head[1] == isl[head[0]]:
                admitted += 1
            take = min(budget, head[1])
            head[1] -= take
            budget -= take
            ptoks += take
            if head[1] == 0:
                done_prefill.append(head[0])
                queue.popleft()
        n_dec = running
        sec = min(int(t), horizon - 1)
        dec_ms = (DECODE_BASE_MS + DECODE_PER_REQ_MS * n_dec) if n_dec else 0.0
        pre_ms = ptoks * (PREFILL_US_PER_TOKEN + PREFILL_US_PER_TOKEN_PER_RUNNING * n_dec) / 1000.0
        step_ms = dec_ms * f_dec[sec] + pre_ms * f_pre[sec] + admitted * admit_ms[sec] + 1.5
        step_ms *= float(np.exp(JITTER_SIGMA * f_jit[sec] * jit[k % len(jit)]))
        t += step_ms / 1000.0
        ends.append(t)
        durs.append(step_ms / 1000.0)
        decs.append(n_dec)
        pres.append(ptoks)
        for r in done_prefill:
            first_step[r] = k
            ttft_end[r] = t
            if osl[r] > 1:
                fin = k + int(osl[r]) - 1
                finishing[fin] = finishing.get(fin, 0) + 1
                running += 1
        done = finishing.pop(k, 0)
        running -= done
        in_flight = running + len(queue)
        limit = int(cap[min(int(t), horizon - 1)])
        while in_flight < limit and sent < total and t < dispatch_window_s:
            dispatch(t)
            in_flight += 1
        k += 1
    n = sent
    step_end = np.asarray(ends)
    step_s = np.asarray(durs)
    fs = first_step[:n]
    last = fs + osl[:n] - 1
    st = start[:n]
    return ServingResult(
        start_s=st,
        ttft_s=ttft_end[:n] - st,
        e2e_s=step_end[last] - st,
        input_tokens=isl[:n].copy(),
        output_tokens=osl[:n].copy(),
        first_step=fs,
        step_end_s=step_end,
        step_s=step_s,
        step_decode=np.asarray(decs, dtype=np.int64),
        step_prefill_tokens=np.asarray(pres, dtype=np.int64),
    )


def summary(res: ServingResult) -> dict[str, float]:
    """Headline metrics in the units SGLang / vLLM print (ms, tok/s), over the whole run."""
    itl = res.all_itls() * 1000.0
    out_tok = res.output_tokens.astype(float)
    tpot = np.where(out_tok > 1, (res.e2e_s - res.ttft_s) * 1000.0 / np.maximum(out_tok - 1, 1), np.nan)
    dur = res.duration_s
    return {
        "duration_s": dur,
        "completed": float(res.n),
        "output_throughput": float(out_tok.sum() / dur) if dur else 0.0,
        "mean_itl_ms": float(itl.mean()) if len(itl) else float("nan"),
        "median_itl_ms": float(np.median(itl)) if len(itl) else float("nan"),
        "p99_itl_ms": float(np.percentile(itl, 99)) if len(itl) else float("nan"),
        "median_ttft_ms": float(np.median(res.ttft_s) * 1000.0),
        "p99_ttft_ms": float(np.percentile(res.ttft_s, 99) * 1000.0),
        "mean_ttft_ms": float(res.ttft_s.mean() * 1000.0),
        "median_tpot_ms": float(np.nanmedian(tpot)),
    }
