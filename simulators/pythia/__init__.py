"""Pythia 8 under PPX: every random number of an event as a PPX draw, or recorded fast.

Modules: :mod:`~ppx.simulators.pythia.engine` (the random engine and its sources),
:mod:`~ppx.simulators.pythia.settings` (settings, presets, ``PythiaSettingsError``),
:mod:`~ppx.simulators.pythia.simulator` (:class:`PythiaSimulator`),
:mod:`~ppx.simulators.pythia.observables` (the observable registry) and
:mod:`~ppx.simulators.pythia.decays` (the tau decay channel as a controlled latent).

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

from ppx.simulators.pythia.decays import TauChannelHandler, tau_channels
from ppx.simulators.pythia.engine import (
    ArraySource,
    NativeRecorder,
    PPXSource,
    PythiaEngine,
    RecordingSource,
    regenerate,
)
from ppx.simulators.pythia.observables import OBSERVABLES, final_state
from ppx.simulators.pythia.settings import PRESETS, PythiaSettingsError, build_pythia
from ppx.simulators.pythia.simulator import PythiaSimulator

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
    "build_pythia",
    "final_state",
    "regenerate",
    "tau_channels",
]
