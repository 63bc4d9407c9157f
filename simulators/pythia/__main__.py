"""Serve Pythia 8 as a PPX simulator: ``python -m ppx.simulators.pythia --preset NAME``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from ppx.simulators._main import main
from ppx.simulators.pythia.observables import OBSERVABLES
from ppx.simulators.pythia.settings import PRESETS
from ppx.simulators.pythia.simulator import PythiaSimulator


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=PRESETS, default="ee_z_hadrons")
    source.add_argument("--settings", help="a .cmnd file of Pythia settings instead of a preset")
    parser.add_argument(
        "--observables",
        nargs="+",
        choices=list(OBSERVABLES),
        default=["charged_multiplicity"],
        help="tagged each event; the first is the result (default: %(default)s)",
    )
    parser.add_argument("--flats", choices=["ppx", "native"], default="ppx")
    parser.add_argument("--control-flats", action="store_true", help="engine chooses flats")
    parser.add_argument("--tau-channel", action="store_true", help="tau channel as a latent")
    parser.add_argument("--calorimeter", action="store_true", help="observe the toy calorimeter")
    parser.add_argument("--noise", type=float, default=0.01, help="calorimeter noise, GeV/cell")


def _factory(args: argparse.Namespace) -> Callable[[], torch.Tensor | None]:
    calorimeter = None
    if args.calorimeter:
        from ppx.simulators.calorimeter import Calorimeter

        calorimeter = Calorimeter(noise=args.noise)
    return PythiaSimulator(
        args.settings or args.preset,
        observables=args.observables,
        calorimeter=calorimeter,
        control_flats=args.control_flats,
        flats=args.flats,
        tau_channel=args.tau_channel,
    )


if __name__ == "__main__":
    main(_factory, model_name="pythia", description=__doc__, add_arguments=_add_arguments)
