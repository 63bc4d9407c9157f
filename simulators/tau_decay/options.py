"""The command line of ``python -m ppx.simulators.tau_decay``: options and the factory."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from .channels import CHANNELS
from .program import DEFAULT_MOMENTUM_PRIOR, make_model

__all__ = ["add_arguments", "from_arguments", "quantities"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-calorimeter`` and ``--channels`` to ``parser``."""
    parser.add_argument("--no-calorimeter", action="store_true", help="no calo observation")
    parser.add_argument("--channels", nargs="+", choices=list(CHANNELS), help="default: all")


def from_arguments(args: argparse.Namespace) -> Callable[[], torch.Tensor]:
    """Build the simulator from the options of :func:`add_arguments`."""
    return make_model(channels=args.channels, calorimeter=not args.no_calorimeter)


def quantities(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """Units and channel names of the latents, for ``ppx`` tables and plots.

    The ``channel`` draw indexes the channels allowed by ``--channels`` (all of
    :data:`CHANNELS` by default), in their order.
    """
    momenta: dict[str, dict[str, object]] = {
        key: {"unit": "GeV", "label": f"$p_{key[1]}^{{\\tau}}$"} for key in DEFAULT_MOMENTUM_PRIOR
    }
    return {**momenta, "channel": {"categories": list(args.channels or CHANNELS)}}
