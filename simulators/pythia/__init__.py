"""Pythia 8 under PPX: every random number of an event as a PPX draw, or recorded fast.

Modules: :mod:`~ppx.simulators.pythia.engine` (the random engine and its sources),
:mod:`~ppx.simulators.pythia.settings` (settings, presets, ``PythiaSettingsError``),
:mod:`~ppx.simulators.pythia.simulator` (:class:`PythiaSimulator`),
:mod:`~ppx.simulators.pythia.observables` (the observable registry),
:mod:`~ppx.simulators.pythia.decays` (the tau decay channel as a controlled latent) and
:mod:`~ppx.simulators.pythia.options` (the command line).

Needs ``pythia8mc`` (GPL-2.0-or-later, optional): ``pip install 'ppx-engine[pythia]'``.
Serve it with ``python -m ppx.simulators.pythia --preset ee_z_tautau --address ADDR``.
"""

from __future__ import annotations

try:
    import pythia8mc  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "ppx.simulators.pythia needs pythia8mc: pip install 'ppx-engine[pythia]'"
    ) from error

from .decays import TauChannelHandler, tau_channels
from .engine import (
    ArraySource,
    NativeRecorder,
    PPXSource,
    PythiaEngine,
    RecordingSource,
    regenerate,
)
from .observables import OBSERVABLES, final_state
from .options import add_arguments, from_arguments, quantities
from .settings import PRESETS, PythiaSettingsError, build_pythia
from .simulator import PythiaSimulator

__all__ = [
    "OBSERVABLES",
    "PRESETS",
    "ArraySource",
    "NativeRecorder",
    "PPXSource",
    "PythiaEngine",
    "PythiaSettingsError",
    "PythiaSimulator",
    "RecordingSource",
    "TauChannelHandler",
    "add_arguments",
    "build_pythia",
    "final_state",
    "from_arguments",
    "quantities",
    "regenerate",
    "tau_channels",
]
