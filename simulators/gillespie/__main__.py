"""Serve the Gillespie SSA: ``python -m ppx.simulators.gillespie --network NAME --address ADDR``."""

from __future__ import annotations

from .._main import main

__all__: list[str] = []

if __name__ == "__main__":
    main("gillespie")
