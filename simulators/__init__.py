"""Runnable PPX programs: ``python -m ppx.simulators.NAME --address ADDR [options]``.

Analytic reference models with exact answers (:mod:`~ppx.simulators.gaussian`,
:mod:`~ppx.simulators.hmm`, :mod:`~ppx.simulators.branching`), physics simulators
(:mod:`~ppx.simulators.gillespie`, :mod:`~ppx.simulators.calorimeter`,
:mod:`~ppx.simulators.tau_decay`, :mod:`~ppx.simulators.pythia`) and the sbibm tasks
(:mod:`~ppx.simulators.sbi_tasks`). :mod:`~ppx.simulators.registry` lists them all by
name; ``cpp/`` holds the C++ simulators.
"""

from __future__ import annotations

__all__: list[str] = []
