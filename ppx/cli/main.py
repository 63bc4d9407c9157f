"""The ``ppx`` application: the top-level commands plus the ``sbi`` group."""

from __future__ import annotations

from ppx.cli.commands import app
from ppx.cli.sbi import app as sbi_app

__all__ = ["app", "main"]

app.add_typer(sbi_app, name="sbi")


def main() -> None:
    """Entry point of ``ppx`` and ``python -m ppx.cli``."""
    app()
