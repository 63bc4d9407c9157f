"""The command line of ``python -m ppx.simulators.tau_decay``: options and the factory."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from .channels import CHANNELS
from .program import make_model

__all__ = ["add_arguments", "from_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-calorimeter`` and ``--channels`` to ``parser``."""
    parser.add_argument("--no-calorimeter", action="store_true", help="no calo observation")
    parser.add_argument("--channels", nargs="+", choices=list(CHANNELS), help="default: all")


def from_arguments(args: argparse.Namespace) -> Callable[[], torch.Tensor]:
    """Build the simulator from the options of :func:`add_arguments`."""
    return make_model(channels=args.channels, calorimeter=not args.no_calorimeter)
