"""Stress-test orchestration: `plan` (the TOML model and its schedule, pure) and `runner` (real processes).

from analysis.stress import load_plan, run_plan
report = run_plan(load_plan("examples/plans/simulated.toml"), store="data/store", workdir="stress-work")
"""

from analysis.stress.plan import Plan, Step, load_plan, schedule
from analysis.stress.runner import StepResult, StressReport, run_plan

__all__ = ["Plan", "Step", "StepResult", "StressReport", "load_plan", "run_plan", "schedule"]
