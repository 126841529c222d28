"""`neighborscope agent` with NVML answered by a fake library of N GPUs (this host has no NVIDIA GPU).

The agent's own code runs unchanged: the nvml sampler imports ``pynvml`` and gets `FakeNvml` (the test double of
``tests/agents/samplers/fake_nvml.py``: the same calls, return shapes and units), so `benchmarks/agent_overhead.py`
can measure the production path (NVML + host + tenants samplers) instead of the node simulator.

    python benchmarks/fake_nvml_agent.py --gpus 34 -- --config agent.toml
    python benchmarks/fake_nvml_agent.py --gpus 34 --agent-root /tmp/base -- --config agent.toml

``--agent-root DIR`` runs the agent of another source tree (e.g. ``git archive HEAD`` unpacked: the code before a
change) over this tree's fake library, so a before/after comparison differs in the agent's code only.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    args = sys.argv[1:]
    gpus = 34
    agent_root = None
    while args[:1] in (["--gpus"], ["--agent-root"]):
        if args[0] == "--gpus":
            gpus = int(args[1])
        else:
            agent_root = str(Path(args[1]).resolve())
        args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    from tests.agents.samplers.fake_nvml import FakeGpu, FakeNvml

    sys.modules["pynvml"] = FakeNvml([FakeGpu(bus_id=f"00000000:{0x10 + i:02x}:00.0") for i in range(gpus)])  # type: ignore[assignment]
    if agent_root is not None:  # the other tree's agent; the fake (stdlib only) stays this tree's
        sys.path.insert(0, agent_root)
        for name in [m for m in sys.modules if m.split(".")[0] in ("agents", "telemetry")]:
            del sys.modules[name]
    import typer

    from agents.cli import agent

    sys.argv = ["neighborscope agent", *args]
    typer.run(agent)


if __name__ == "__main__":
    main()
