"""The per-node agent: samplers on one clock, a disk spool and an HTTP transport to the collector.

Imports only `telemetry` (the ground floor).
"""
