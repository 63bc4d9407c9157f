"""Serve one sbibm task: ``python -m ppx.simulators.sbi_tasks --task NAME --address ADDR``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from ppx.simulators._main import main
from ppx.simulators.sbi_tasks import TASKS, __doc__, get_task


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=TASKS, help="sbibm's task name")


def _factory(args: argparse.Namespace) -> Callable[[], torch.Tensor]:
    return get_task(args.task).model


if __name__ == "__main__":
    main(_factory, model_name="sbi_tasks", description=__doc__, add_arguments=_add_arguments)
