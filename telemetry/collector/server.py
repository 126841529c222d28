"""What every collector process that serves HTTP shares: the listening socket (`bind`), the file-descriptor
limit (`raise_nofile_limit`), the garbage collector's settings (`tune_gc`) and the uvicorn server
(`uvicorn_server`). One collector process alone (`cli`) and each worker of several (`workers`) use them."""

from __future__ import annotations

import gc
import resource
import socket
from pathlib import Path
from typing import Any

from telemetry.collector.settings import CollectorSettings
from telemetry.errors import ConfigError


def raise_nofile_limit() -> int:
    """Raise the soft file-descriptor limit to the hard one (as Go programs do at start) and return it: a
    collector holds a descriptor per client connection and per store file it writes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


#: young-generation threshold of the cyclic garbage collector in a collector process (Python's default: 700)
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Take what the process holds at start (~100k objects of its imports, the app, the store's index) out of
    the cyclic garbage collector's view (`gc.freeze`) and let it run less often. A batch is a few hundred lists
    and dicts that reference counting frees; with the defaults the collector's full collections, each walking
    every object, took a third of decoding's CPU (docs/collector-performance.md). Cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_server(
    app: Any, settings: CollectorSettings, log_level: str, tls_cert: Path | None, tls_key: Path | None
) -> Any:
    """The uvicorn server of ``app``: header deadline and connection cap (`protocol.guarded_protocol`), keep-alive
    timeout, 10 s to finish the requests in flight on shutdown, TLS when given."""
    import uvicorn

    from telemetry.collector.protocol import guarded_protocol
    from telemetry.collector.settings import FD_RESERVE, connection_limit

    opts = settings.collector
    limit = connection_limit(opts, raise_nofile_limit())
    return uvicorn.Server(
        uvicorn.Config(
            app,
            http=guarded_protocol(opts.header_timeout_s, hard_limit=limit + FD_RESERVE // 2),
            limit_concurrency=limit,  # uvicorn answers 503 to a request while this many connections are open
            timeout_keep_alive=opts.keep_alive_timeout_s,  # type: ignore[arg-type] - a float works
            h11_max_incomplete_event_size=64 * 1024,  # request line and headers (h11; httptools has its own)
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=10,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
        )
    )
