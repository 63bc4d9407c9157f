"""The command line of ``python -m ppx.simulators.pythia``: options and the factory."""

from __future__ import annotations

import argparse

from ..calorimeter import Calorimeter
from .observables import OBSERVABLES
from .settings import PRESETS
from .simulator import PythiaSimulator

__all__ = ["add_arguments", "from_arguments", "quantities"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the settings, observable, flat-source, tau and calorimeter options to ``parser``."""
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


def from_arguments(args: argparse.Namespace) -> PythiaSimulator:
    """Build the simulator from the options of :func:`add_arguments`."""
    calorimeter = Calorimeter(noise=args.noise) if args.calorimeter else None
    return PythiaSimulator(
        args.settings or args.preset,
        observables=args.observables,
        calorimeter=calorimeter,
        control_flats=args.control_flats,
        flats=args.flats,
        tau_channel=args.tau_channel,
    )


def quantities(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """Labels and units of the tagged observables, for ``ppx`` tables and plots.

    The tau channels (``tau-/channel``, ``tau+/channel``) index Pythia's open tau
    decay channels, whose names only an initialised Pythia knows: they stay numbers.
    """
    visible = ("$E$", "$p_x$", "$p_y$", "$p_z$")
    tau: dict[str, dict[str, object]] = {
        f"tau_visible[{i}]": {"label": f"visible {name} of the $\\tau^-$"}
        for i, name in enumerate(visible)
    }
    return {
        **tau,
        "tau_visible": {"unit": "GeV"},
        "tau_visible[4]": {"label": "charged products of the $\\tau^-$", "unit": ""},
        "thrust": {"label": "thrust $T$"},
        "sphericity": {"label": "sphericity $S$"},
        "final_state_count": {"label": "final-state particles"},
        "charged_multiplicity": {"label": "charged final-state particles"},
        "jets_durham": {"label": "jets (Durham, $y_{cut} = 0.005$)"},
        "jets_antikt": {"label": "jets (anti-$k_T$, $R = 0.4$)"},
    }
