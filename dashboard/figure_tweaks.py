"""What the dashboard adjusts on the shared figure builders' output (`analysis.figures`), pure figure -> figure:

- `plain_bar_labels`: bar labels as plain numbers with thousands separators (``71,520``, not ``7.152e+04``);
- `antagonist_colours` / `recolour`: one colour per antagonist name, the same in every chart of a page;
- `band_labels_above`: run-band labels (phase · run id) above the plot area, not on top of traces at 100 %.

(These belong in ``analysis/figures`` for the report too; until they move there, the dashboard applies them.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import plotly.graph_objects as go

from analysis.figures.style import PALETTE

BAND_LABEL_SHIFT_PX = 24  # above the top panel's subplot title


def plain_number(value: float | None) -> str:
    """``71520.4`` -> ``71,520``; ``812.34`` -> ``812``; ``41.27`` -> ``41.3``; ``0.1234`` -> ``0.12``."""
    if value is None:
        return ""
    v = float(value)
    if v != v:  # NaN
        return ""
    digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 2
    return f"{v:,.{digits}f}"


def plain_bar_labels(fig: go.Figure) -> go.Figure:
    """Every bar's label and hover value as a plain number with thousands separators."""
    for trace in fig.data:
        if trace.type == "bar" and trace.y is not None:
            trace.text = [plain_number(v) for v in trace.y]
            if trace.hovertemplate:
                trace.hovertemplate = trace.hovertemplate.replace("%{y:.4g}", "%{y:,.2f}")
    return fig


def antagonist_colours(names: Iterable[str]) -> dict[str, str]:
    """name -> colour, in rank order; a merged antagonist (``a+b``) gives each member its colour too. The
    first two palette colours are left to the victim's own traces."""
    colours: dict[str, str] = {}
    for name in names:
        for key in (name, *str(name).split("+")):
            if key not in colours:
                colours[key] = PALETTE[(len(colours) + 2) % len(PALETTE)]
    return colours


def recolour(fig: go.Figure, colours: Mapping[str, str]) -> go.Figure:
    """Traces named like a key of ``colours`` take that colour (line and marker)."""
    for trace in fig.data:
        colour = colours.get(str(trace.name))
        if colour is None:
            continue
        if hasattr(trace, "line"):
            trace.line.color = colour
        if hasattr(trace, "marker"):
            trace.marker.color = colour
    return fig


def band_labels_above(fig: go.Figure, labels: Iterable[str]) -> go.Figure:
    """The annotations whose text is one of ``labels`` (run bands) move above the top of their panel, above
    its subplot title, with room made for them in the top margin."""
    wanted = set(labels)
    moved = False
    for ann in fig.layout.annotations:
        if ann.text in wanted:
            ann.update(y=1.0, yanchor="bottom", yshift=BAND_LABEL_SHIFT_PX)
            moved = True
    if moved:
        top = fig.layout.margin.t if fig.layout.margin.t is not None else 50
        fig.update_layout(margin={"t": max(top, 50) + BAND_LABEL_SHIFT_PX})
    return fig
