"""neighborscope ground floor: schema, line protocol, stores, collector, simulator.

Nothing here imports `agents`, `analysis` or `dashboard` (see STYLE.md: imports follow the data flow).
"""

__version__ = "0.1.0"
