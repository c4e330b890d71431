"""A figure that draws off-screen without touching the user's matplotlib backend.

``matplotlib.use("Agg")`` would switch a notebook's backend for the whole session; a :class:`~matplotlib.figure.Figure`
made directly, with an Agg canvas of its own, never enters pyplot's list of figures, needs no ``close`` and leaves the
backend alone. Every figure of the project (diagnostics, analysis, dss) is made here.
"""

from __future__ import annotations

from typing import Any


def new_figure(**kwargs: Any) -> Any:
    """A :class:`matplotlib.figure.Figure` (``figsize=`` and the rest as for ``Figure``) with its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig
