"""Printing a benchmark's results table (rich is a dependency of ppx itself)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["print_table"]


def print_table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    left_columns: int = 1,
    width: int = 130,
) -> Console:
    """Print a table whose first ``left_columns`` columns are left-aligned; return the console."""
    console = Console(width=max(width, Console().width))
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(escape(header), justify="left" if i < left_columns else "right")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    return console
