"""Nightly history: change points (Otava-style), performance regressions and thermal models across nights."""
