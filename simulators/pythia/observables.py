"""Observables of a Pythia event, by name: the registry :data:`OBSERVABLES`.

Each observable maps a ``pythia8mc.Event`` (or its :class:`ReadOut`, which reads the
final state once for every observable of the event) to a fixed-length list of floats:

    final_state_count      [n final-state particles]
    charged_multiplicity   [n charged final-state particles]
    thrust                 [T]  Pythia's Thrust on the visible final state (nan if undefined)
    sphericity             [S]  Pythia's Sphericity (power 2) on the visible final state
    jets_durham            [n jets]  Pythia's ClusterJet, Durham, y_cut = 0.005 (e+ e-)
    jets_antikt            [n jets]  Pythia's SlowJet, anti-kT R = 0.4, pT > 20 GeV, |eta| < 4.5
    tau_visible            [E, px, py, pz, n charged]  visible final-state descendants
                           of the first tau- (its decay products and the photons it
                           radiated; nan if none)

The analysis classes are Pythia's own (``pythia8mc.Thrust``, ``Sphericity``,
``ClusterJet``, ``SlowJet``); none of them draws random numbers, so observables never
change an event's draws.

Reading the event record costs a Python call into Pythia per particle and per
quantity (0.2-0.4 us each, as many as Pythia's own ``next()`` for an e+ e- event), so
:class:`ReadOut` makes the fewest such calls and shares them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import compress

import numpy as np
import pythia8mc

__all__ = ["NEUTRINOS", "OBSERVABLES", "ReadOut", "final_state", "make_observables"]

NEUTRINOS = frozenset({12, 14, 16, 18})
_VISIBLE = 2  # Pythia's "select": all final-state particles but neutrinos
_PARTICLE = pythia8mc.Particle
_IS_FINAL, _IS_CHARGED = _PARTICLE.isFinal, _PARTICLE.isCharged
_COLUMNS = (_PARTICLE.id, _PARTICLE.e, _PARTICLE.px, _PARTICLE.py, _PARTICLE.pz)


class ReadOut:
    """One event read out once: Pythia's record, its final-state particles and their array.

    Attributes:
        event: Pythia's event record (valid until the next ``next()``).
        particles: the final-state ``pythia8mc.Particle`` s (copies).
        final: their ``[n, 5]`` float64 array (see :func:`final_state`).
    """

    __slots__ = ("event", "final", "particles")

    def __init__(self, event: pythia8mc.Event) -> None:
        everything = event.particles()  # one call, copies the record
        self.event = event
        self.particles = list(compress(everything, map(_IS_FINAL, everything)))
        self.final = np.empty((len(self.particles), 5), dtype=np.float64)
        for column, read in enumerate(_COLUMNS):  # one unbound method mapped per column
            self.final[:, column] = list(map(read, self.particles))


Observable = Callable[[pythia8mc.Event | ReadOut], list[float]]


def _read(event: pythia8mc.Event | ReadOut) -> ReadOut:
    return event if isinstance(event, ReadOut) else ReadOut(event)


def _record(event: pythia8mc.Event | ReadOut) -> pythia8mc.Event:
    return event.event if isinstance(event, ReadOut) else event


def final_state(event: pythia8mc.Event | ReadOut) -> np.ndarray:
    """The final-state particles as a float64 array ``[n, 5]``: PDG id, E, px, py, pz.

    The columns of :mod:`ppx.simulators.tau_decay`'s ``final_state`` tag, so that
    analysis code (and the calorimeter) reads both alike.
    """
    return _read(event).final


def _final_state_count(event: pythia8mc.Event | ReadOut) -> list[float]:
    return [float(len(_read(event).particles))]


def _charged_multiplicity(event: pythia8mc.Event | ReadOut) -> list[float]:
    return [float(sum(map(_IS_CHARGED, _read(event).particles)))]


def _thrust() -> Observable:
    thrust = pythia8mc.Thrust(_VISIBLE)
    return lambda event: [thrust.thrust() if thrust.analyze(_record(event)) else math.nan]


def _sphericity() -> Observable:
    sphericity = pythia8mc.Sphericity(2.0, _VISIBLE)
    return lambda event: [
        sphericity.sphericity() if sphericity.analyze(_record(event)) else math.nan
    ]


def _jets_durham() -> Observable:
    jets = pythia8mc.ClusterJet("Durham", _VISIBLE)
    return lambda event: [
        float(jets.size()) if jets.analyze(_record(event), 0.005, 0.0) else math.nan
    ]


def _jets_antikt() -> Observable:
    jets = pythia8mc.SlowJet(-1, 0.4, 20.0, 4.5, _VISIBLE)
    return lambda event: [float(jets.sizeJet()) if jets.analyze(_record(event)) else math.nan]


def _tau_visible(record: pythia8mc.Event | ReadOut) -> list[float]:
    event = _record(record)
    particles = event.particles()
    first = next((i for i, p in enumerate(particles) if p.id() == 15), None)
    if first is None:
        return [math.nan] * 5
    total, charged = np.zeros(4), 0
    for d in event[first].daughterListRecursive():
        p = particles[d]
        if p.isFinal() and abs(p.id()) not in NEUTRINOS:
            total += (p.e(), p.px(), p.py(), p.pz())
            charged += p.isCharged()
    return [*total.tolist(), float(charged)]


#: name -> factory of the observable (a fresh analysis object per simulator).
OBSERVABLES: dict[str, Callable[[], Observable]] = {
    "final_state_count": lambda: _final_state_count,
    "charged_multiplicity": lambda: _charged_multiplicity,
    "thrust": _thrust,
    "sphericity": _sphericity,
    "jets_durham": _jets_durham,
    "jets_antikt": _jets_antikt,
    "tau_visible": lambda: _tau_visible,
}


def make_observables(names: Sequence[str]) -> dict[str, Observable]:
    """Build the named observables.

    Raises:
        ValueError: an unknown name (the message lists the registry).
    """
    unknown = [n for n in names if n not in OBSERVABLES]
    if unknown or isinstance(names, str):
        raise ValueError(
            f"unknown observable(s) {unknown or names!r}; choose from {list(OBSERVABLES)}"
        )
    return {name: OBSERVABLES[name]() for name in names}
