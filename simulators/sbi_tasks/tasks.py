"""The five tasks by sbibm's name."""

from __future__ import annotations

from ._task import Task
from .gaussian_linear import GaussianLinear
from .lotka_volterra import LotkaVolterra
from .sir import SIR
from .slcp import SLCP
from .two_moons import TwoMoons

__all__ = ["TASKS", "get_task"]

_CLASSES: dict[str, type[Task]] = {
    cls.name: cls for cls in (GaussianLinear, TwoMoons, SLCP, SIR, LotkaVolterra)
}

#: The task names, in the order of the table of :mod:`ppx.simulators.sbi_tasks`.
TASKS: tuple[str, ...] = tuple(_CLASSES)


def get_task(name: str) -> Task:
    """A fresh task by sbibm's name.

    Raises:
        ValueError: Unknown name (the message lists :data:`TASKS`).
    """
    try:
        return _CLASSES[name]()
    except KeyError:
        raise ValueError(f"unknown task {name!r}: use one of {', '.join(TASKS)}") from None
