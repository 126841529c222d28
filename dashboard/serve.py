"""``python -m dashboard.serve ARGS…``: ``streamlit run ARGS…`` with the dashboard's heavy modules imported first.

Streamlit imports what a page imports on the page's first run, while the first visitor waits: polars, plotly, the
store and the analysis code cost about a second here (benchmarks/dashboard_load.py's "cold" figure). Imported
before the server starts listening, they are already in ``sys.modules`` when the first page runs. Only modules that
do nothing Streamlit-specific at import are listed (no ``st.cache_*`` made outside the server's runtime); the list
comes from ``python -X importtime`` of a server's first page view.
"""

from __future__ import annotations

import importlib
import sys

WARM_MODULES = (
    # pandas: Streamlit converts tables through it (0.5 s); material_icon_names: the navigation's icons
    "numpy",
    "pandas",
    "polars",
    "pyarrow",
    "streamlit.material_icon_names",
    "plotly.graph_objects",
    "plotly.subplots",
    "plotly.io",
    "tsdownsample",
    "telemetry.schema",
    "telemetry.topology",
    "telemetry.store.base",
    "telemetry.store.parquet",
    "telemetry.store.influx",
    "analysis.align",
    "analysis.analyze",
    "analysis.attribution",
    "analysis.history.regression",
    "analysis.figures",
    "analysis.ingest.model",
)


def warm_up(modules: tuple[str, ...] = WARM_MODULES) -> list[str]:
    """Import ``modules``; returns the ones that could not be imported (an optional extra not installed), which
    the page that needs them will report itself."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def main() -> None:
    warm_up()
    from streamlit.web.cli import main as streamlit_main

    sys.argv = ["streamlit", "run", *sys.argv[1:]]
    streamlit_main()


if __name__ == "__main__":
    main()
