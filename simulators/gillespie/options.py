"""The command line of ``python -m ppx.simulators.gillespie``: options and the factory."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch

from .networks import NETWORKS
from .ssa import make_model

__all__ = ["add_arguments", "from_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the network, rate, observation and noise options to ``parser``."""
    parser.add_argument("--network", choices=sorted(NETWORKS), default="birth_death")
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a rate constant (repeatable)",
    )
    parser.add_argument("--t-max", type=float, default=5.0, help="default: %(default)s")
    parser.add_argument("--num-observations", type=int, default=5, help="default: %(default)s")
    parser.add_argument("--noise", choices=("gaussian", "poisson"), default="gaussian")
    parser.add_argument("--noise-scale", type=float, default=1.0, help="default: %(default)s")
    parser.add_argument("--max-reactions", type=int, default=100_000)


def from_arguments(args: argparse.Namespace) -> Callable[[], torch.Tensor]:
    """Build the simulator from the options of :func:`add_arguments`.

    Raises:
        ValueError: A ``--rate`` that is not ``NAME=NUMBER``, or a value ``make_model``
            rejects.
    """
    rates: dict[str, float] = {}
    for item in args.rate:
        name, _, value = item.partition("=")
        rates[name.strip()] = float(value)
    times = np.linspace(0, args.t_max, args.num_observations + 1)[1:]
    return make_model(
        NETWORKS[args.network](),
        rates=rates,
        observation_times=times,
        noise=args.noise,
        noise_scale=args.noise_scale,
        max_reactions=args.max_reactions,
    )
