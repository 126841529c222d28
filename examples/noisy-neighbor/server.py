"""A tiny OpenAI-compatible streaming server whose token generation is real CPU work (no model download).

Endpoints, shaped like vLLM's:

- ``GET  /v1/models``
- ``POST /v1/chat/completions`` and ``POST /v1/completions``: ``stream: true`` answers Server-Sent Events
  (``data: {chunk}`` lines, one token per chunk with its ``token_ids``, a final chunk with ``finish_reason``,
  a usage chunk when ``stream_options.include_usage``, then ``data: [DONE]``); ``stream: false`` one JSON.
  Exactly ``max_tokens`` tokens are generated (no end-of-sequence).
- ``GET /corpus.txt``: the seeded word corpus the benchmark builds its prompts from (llama-benchy's
  ``--book-url``), ``GET /tokenizer.json``: the word-level tokenizer of the same vocabulary.
- ``GET /health``.

The "model" is a seeded numpy decoder: every token runs ``layers`` dense layers on a (64, d) state,
single-threaded (BLAS threads pinned to 1), sized at start (thread CPU time, so a busy host does not skew it)
so one token costs ``--token-ms`` of CPU; prefill costs a quarter of a decode step per 64 prompt tokens. A CPU-hungry neighbour therefore
stretches the inter-token latency the way it stretches a real CPU-bound decode loop.

    python examples/noisy-neighbor/server.py --port 8000 --token-ms 20
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse  # noqa: E402

MODEL = "tiny-cpu-decoder"
VOCAB_SIZE = 512
ROWS = 64


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


def create_app(dec: Decoder, corpus: str, tokenizer: str) -> FastAPI:
    app = FastAPI(title="cpu-neighbor tiny decoder")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "layers": dec.layers}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "neighborscope",
                                            "max_model_len": 8192}]}  # fmt: skip

    @app.get("/corpus.txt")
    def corpus_txt() -> PlainTextResponse:
        return PlainTextResponse(corpus)

    @app.get("/tokenizer.json")
    def tokenizer_file() -> Response:
        return Response(tokenizer, media_type="application/json")

    def generate(body: dict[str, Any], chat: bool) -> tuple[list[int], Iterator[tuple[int, str]]]:
        ids = dec.encode(_prompt_text(body, chat))
        n = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        n = max(1, min(n, 4096))

        def tokens() -> Iterator[tuple[int, str]]:
            x = dec.prefill(ids)
            last = ids[-1] if ids else 1
            for _ in range(n):
                x, last = dec.step(x, last)
                yield last, " " + dec.vocab[last - 1]

        return ids, tokens()

    async def completions(request: Request, chat: bool) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": {"message": "body is not JSON", "type": "invalid_request_error"}}, 400)
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        obj = "chat.completion" if chat else "text_completion"
        ids, toks = generate(body, chat)
        if not body.get("stream"):
            out = list(toks)
            text = "".join(t for _, t in out)
            choice: dict[str, Any] = {"index": 0, "finish_reason": "length", "token_ids": [i for i, _ in out]}
            choice |= {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
            return JSONResponse({"id": rid, "object": obj, "created": created, "model": MODEL, "choices": [choice],
                                 "usage": {"prompt_tokens": len(ids), "completion_tokens": len(out),
                                           "total_tokens": len(ids) + len(out)}})  # fmt: skip
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunk_obj = obj + ".chunk" if chat else obj

        def sse() -> Iterator[str]:
            def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
                doc = {"id": rid, "object": chunk_obj, "created": created, "model": MODEL, "choices": choices, **extra}
                return "data: " + json.dumps(doc, separators=(",", ":")) + "\n\n"

            if chat:
                yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                              "finish_reason": None}])  # fmt: skip
            count = 0
            for tid, text in toks:
                count += 1
                c: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": None, "token_ids": [tid]}
                c |= {"delta": {"content": text}} if chat else {"text": text}
                yield chunk([c])
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
    args = ap.parse_args(argv)

    import uvicorn

    vocab = vocabulary(args.seed)
    dec = Decoder(vocab, token_ms=args.token_ms, seed=args.seed)
    app = create_app(dec, corpus_text(vocab, seed=args.seed), tokenizer_json(vocab))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    if args.port_file is not None:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(str(sock.getsockname()[1]))
        tmp.replace(args.port_file)
    print(
        f"cpu-neighbor server: {dec.layers} layer(s) per token on http://{args.host}:{sock.getsockname()[1]}",
        flush=True,
    )
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


if __name__ == "__main__":
    main()
