"""Serve the toy calorimeter: ``python -m ppx.simulators.calorimeter --address ADDR``."""

from __future__ import annotations

from .._main import main

__all__: list[str] = []

if __name__ == "__main__":
    main("calorimeter")
