"""Writing study reports: Markdown tables of plain numbers, readable in any viewer."""

from __future__ import annotations

import math
from typing import Any


def cell(value: Any) -> str:
    """A table cell: undefined as blank, numbers to three significant digits (large ones in
    full, with thousands separators)."""
    if value is None:
        return ""
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        value = float(value)
        if math.isnan(value):
            return ""
        return f"{value:.3g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def markdown_table(table) -> str:
    """A pandas DataFrame as a Markdown table (column names as the header)."""
    head = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])
