"""The agent's transport to a TLS collector: the certificate is verified against the configured CA."""

from __future__ import annotations

from agents.config import parse_config
from agents.transport import Transport
from telemetry.batch import encode_batch
from tests.telemetry.collector.test_http_ingest import accel_frame


def body(seq: int) -> bytes:
    return encode_batch("node1", "boot", seq, {"accel": accel_frame()})


def test_agent_posts_to_a_tls_collector_trusting_a_custom_ca(collector_factory, tls_files):
    import ssl

    ca, crt, key = tls_files
    c = collector_factory(
        extra_args=["--tls-cert", str(crt), "--tls-key", str(key)],
        scheme="https",
        verify=ssl.create_default_context(cafile=str(ca)),
    )
    cfg = parse_config({"node": "node1", "collector": {"url": c.url, "token": "token-node1", "ca_file": str(ca)}})
    t = Transport(cfg.collector_url, cfg.token, ca_file=cfg.ca_file)
    assert t.post(body(0)).outcome == "ok"


def test_agent_refuses_a_collector_whose_certificate_it_cannot_verify(collector_factory, tls_files):
    import ssl

    ca, crt, key = tls_files
    c = collector_factory(
        extra_args=["--tls-cert", str(crt), "--tls-key", str(key)],
        scheme="https",
        verify=ssl.create_default_context(cafile=str(ca)),
    )
    res = Transport(c.url, "token-node1").post(body(0))  # system CAs only: the test CA is unknown
    assert res.outcome == "retry" and res.status is None
    assert "CERTIFICATE_VERIFY_FAILED" in res.message
