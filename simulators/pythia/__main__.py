"""Serve Pythia 8 as a PPX simulator: ``python -m ppx.simulators.pythia --preset NAME``."""

from __future__ import annotations

from .._main import main

__all__: list[str] = []

if __name__ == "__main__":
    main("pythia")
