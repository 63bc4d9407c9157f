"""The command line of ``python -m ppx.simulators.tau_decay``: options and the factory."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from .channels import CHANNELS
from .polarization import check_polarization_setting
from .program import DEFAULT_MOMENTUM_PRIOR, make_model

__all__ = ["add_arguments", "from_arguments", "quantities"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-calorimeter``, ``--channels`` and ``--polarization`` to ``parser``."""
    parser.add_argument("--no-calorimeter", action="store_true", help="no calo observation")
    parser.add_argument("--channels", nargs="+", choices=list(CHANNELS), help="default: all")
    parser.add_argument(
        "--polarization",
        nargs="+",
        type=float,
        metavar="P",
        help="tau- polarisation: a fixed P in [-1, 1] (default 0), or LOW HIGH of a "
        "Uniform prior (address 'polarization')",
    )


def _polarization(args: argparse.Namespace) -> float | tuple[float, float]:
    """The ``--polarization`` setting: 0, one fixed value, or a ``(low, high)`` box."""
    values = getattr(args, "polarization", None) or [0.0]
    if len(values) > 2:
        raise ValueError(f"--polarization: one value or LOW HIGH, got {values}")
    return check_polarization_setting(values[0] if len(values) == 1 else tuple(values))


def from_arguments(args: argparse.Namespace) -> Callable[[], torch.Tensor]:
    """Build the simulator from the options of :func:`add_arguments`."""
    return make_model(
        channels=args.channels,
        calorimeter=not args.no_calorimeter,
        polarization=_polarization(args),
    )


def quantities(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """Units and channel names of the latents, for ``ppx`` tables and plots.

    The ``channel`` draw indexes the channels allowed by ``--channels`` (all of
    :data:`CHANNELS` by default), in their order; ``polarization`` is listed when
    ``--polarization LOW HIGH`` makes it a latent.
    """
    momenta: dict[str, dict[str, object]] = {
        key: {"unit": "GeV", "label": f"$p_{key[1]}^{{\\tau}}$"} for key in DEFAULT_MOMENTUM_PRIOR
    }
    channel: dict[str, dict[str, object]] = {
        "channel": {"categories": list(args.channels or CHANNELS)}
    }
    if isinstance(_polarization(args), tuple):
        momenta["polarization"] = {"label": "$P_{\\tau}$"}
    return {**momenta, **channel}
