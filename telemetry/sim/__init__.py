"""The node simulator's parts: `scenario` (declarative scenarios, presets), `serving` (step-based LLM
server + benchmark client), `physics` (1 Hz device / host state and schema frames), `engine` (simulate,
ground truth), `formats` (real benchmark file formats). The public API is `telemetry.simulator`."""
