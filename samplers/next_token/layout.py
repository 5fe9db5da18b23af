"""The token layout of a next-token run: the model's raster grid, or one row for a partial run."""

from __future__ import annotations

from ..layout import TokenLayout


def run_layout(model, total: int) -> TokenLayout:
    """``model.token_layout`` when the run fills it, else a single row of ``total`` tokens."""
    scales = getattr(model, "token_layout", None)
    layout = TokenLayout(tuple(scales)) if scales else None
    if layout is None or layout.num_tokens != total:
        return TokenLayout(((1, total),))
    return layout
