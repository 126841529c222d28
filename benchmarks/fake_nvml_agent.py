"""`neighborscope agent` with NVML answered by a fake library of N GPUs (this host has no NVIDIA GPU).

The agent's own code runs unchanged: the nvml sampler imports ``pynvml`` and gets `FakeNvml` (the test double of
``tests/agents/samplers/fake_nvml.py``: the same calls, return shapes and units), so `benchmarks/agent_overhead.py`
can measure the production path (NVML + host + tenants samplers) instead of the node simulator.

    python benchmarks/fake_nvml_agent.py --gpus 34 -- --config agent.toml
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    args = sys.argv[1:]
    gpus = 34
    if args[:1] == ["--gpus"]:
        gpus, args = int(args[1]), args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    from tests.agents.samplers.fake_nvml import FakeGpu, FakeNvml

    sys.modules["pynvml"] = FakeNvml([FakeGpu(bus_id=f"00000000:{0x10 + i:02x}:00.0") for i in range(gpus)])  # type: ignore[assignment]
    import typer

    from agents.cli import agent

    sys.argv = ["neighborscope agent", *args]
    typer.run(agent)


if __name__ == "__main__":
    main()
