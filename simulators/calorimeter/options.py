"""The command line of ``python -m ppx.simulators.calorimeter``: options and the factory."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from .config import CalorimeterConfig
from .program import make_model

__all__ = ["add_arguments", "from_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the particle, energy range and noise options to ``parser``."""
    parser.add_argument("--particle", type=int, default=22, help="PDG id (default: 22)")
    parser.add_argument("--energy-min", type=float, default=1.0, help="default: 1 GeV")
    parser.add_argument("--energy-max", type=float, default=100.0, help="default: 100 GeV")
    parser.add_argument("--noise", type=float, default=0.01, help="GeV per cell (default: 0.01)")


def from_arguments(args: argparse.Namespace) -> Callable[[], torch.Tensor]:
    """Build the simulator from the options of :func:`add_arguments`."""
    config = CalorimeterConfig(noise=args.noise)
    return make_model((args.energy_min, args.energy_max), args.particle, config)
