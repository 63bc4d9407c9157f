"""The command line of ``python -m ppx.simulators.sbi_tasks``: ``--task NAME``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from .tasks import TASKS, get_task

__all__ = ["add_arguments", "from_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the required ``--task`` option to ``parser``."""
    parser.add_argument("--task", required=True, choices=TASKS, help="sbibm's task name")


def from_arguments(args: argparse.Namespace) -> Callable[[], torch.Tensor]:
    """The PPX program of the chosen task."""
    return get_task(args.task).model
