"""Collector configuration (TOML), validated with pydantic.

```toml
[collector]
max_body_bytes = 16777216        # 413 above this (compressed or not)
max_batch_rows = 1000000         # 413 for a batch with more rows
rate_limit_rows_per_s = 50000    # per node; 429 + Retry-After above (0 = unlimited)
header_timeout_s = 10            # a connection whose request headers are not in by then is closed
body_timeout_s = 30              # 408 for a body not received in full by then
keep_alive_timeout_s = 5         # an idle keep-alive connection is closed after this
max_connections = 0              # 503 above this many open connections (0: from `ulimit -n`, see below)
max_future_s = 86400             # 422 for a time further ahead than this (or before 2000-01-01)
commit_pace_s = 0.05             # when busy, one group commit per this long (larger groups: less CPU per batch)
workers = 1                      # HTTP worker processes sharing the port, and one store writer (read at start)

[nodes.node1]
token = "s3cret"                 # or, better, the hash:
# token_sha256 = "2bb80d53..."   # sha256 hex of the token (`neighborscope collector --hash-token`)
```
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from telemetry.batch import NODE_PATTERN
from telemetry.config import model_from_dict, read_toml


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class NodeAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(default=None, min_length=8, repr=False)
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", repr=False)

    @model_validator(mode="after")
    def _one_of(self) -> NodeAuth:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of token or token_sha256")
        return self

    def digest(self) -> str:
        return self.token_sha256 or hash_token(self.token or "")


class CollectorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(default=16 * 2**20, ge=1024, le=2**31)
    max_batch_rows: int = Field(default=1_000_000, ge=1, description="413 for a batch with more rows")
    rate_limit_rows_per_s: float = Field(
        default=0.0, ge=0, description="per-node budget of rows per second (0 = unlimited); 429 + Retry-After above"
    )
    rate_limit_burst_rows: float = Field(default=0.0, ge=0, description="bucket size; default 10 s of the rate")
    header_timeout_s: float = Field(
        default=10.0, gt=0, le=3600, description="close a connection whose request headers are not in by then"
    )
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600, description="408 for a body not in full by then")
    keep_alive_timeout_s: float = Field(default=5.0, gt=0, le=3600, description="close idle keep-alive connections")
    max_connections: int = Field(
        default=0,
        ge=0,
        description="503 for requests while this many connections are open; 0: the file-descriptor limit less "
        "a reserve for the store (`connection_limit`)",
    )
    max_future_s: float = Field(default=86_400.0, ge=0, description="422 for a time further ahead than this")
    commit_pace_s: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="a busy collector commits at most one group of batches per this many seconds (0: as soon as "
        "the previous one is done); larger groups cost less CPU per batch, at most this much more latency",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="processes serving HTTP on the one port (auth, decoding, validation); above 1 they hand the "
        "validated batches to one more process that owns the store (docs/fleet.md). Read at start only",
    )


#: file descriptors kept for the store (Parquet files, the queue, InfluxDB connections) out of ``ulimit -n``
FD_RESERVE = 128


def connection_limit(opts: CollectorOptions, nofile: int) -> int:
    """Connections served at once: ``max_connections``, else the file-descriptor limit ``nofile`` less
    `FD_RESERVE` (at least 16), so idle or slow clients can never take the descriptors the store needs."""
    return opts.max_connections or max(16, nofile - FD_RESERVE)


class CollectorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collector: CollectorOptions = Field(default_factory=CollectorOptions)
    nodes: dict[str, NodeAuth] = Field(default_factory=dict)
    _digest_table: dict[str, str] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _names(self) -> CollectorSettings:
        for name in self.nodes:
            if not re.match(NODE_PATTERN, name):
                raise ValueError(f"invalid node name {name!r}")
        return self

    def node_for_token(self, token: str) -> str | None:
        """The node a bearer token belongs to: one sha256 and one dict lookup (digest -> node, built once),
        so the cost does not grow with the fleet; the digest, not the token, is what is compared."""
        return self._by_digest.get(hash_token(token))

    @property
    def _by_digest(self) -> dict[str, str]:
        if self._digest_table is None:
            self._digest_table = {auth.digest(): name for name, auth in self.nodes.items()}
        return self._digest_table


def load_settings(path: str | Path | None, extra_tokens: dict[str, str] | None = None) -> CollectorSettings:
    """The collector's settings: the TOML file at ``path`` (None: defaults) plus ``extra_tokens`` (node -> token,
    from the command line). `ConfigError`, one line per problem naming the file and key, on a bad file."""
    data: dict = read_toml(path) if path is not None else {}
    nodes = data.setdefault("nodes", {})
    for node, token in (extra_tokens or {}).items():
        nodes[node] = {"token": token}
    return model_from_dict(CollectorSettings, data, str(path) if path is not None else "options")
