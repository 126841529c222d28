"""Alerts: rules (pure: state + frames -> transitions), the engine (persisted state, evaluation), Alertmanager
and webhook delivery (the edge), and the `neighborscope alerts` command."""
