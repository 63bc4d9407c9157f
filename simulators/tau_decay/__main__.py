"""Serve the tau decay: ``python -m ppx.simulators.tau_decay --address ADDR``."""

from __future__ import annotations

from .._main import main

__all__: list[str] = []

if __name__ == "__main__":
    main("tau_decay")
