"""Serve one sbibm task: ``python -m ppx.simulators.sbi_tasks --task NAME --address ADDR``."""

from __future__ import annotations

from .._main import main

__all__: list[str] = []

if __name__ == "__main__":
    main("sbi_tasks")
