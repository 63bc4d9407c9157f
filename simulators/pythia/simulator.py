"""A Pythia 8 event as a PPX program: :class:`PythiaSimulator`.

One call generates one event::

    pythia/flat ~ Uniform(0, 1)        every random number of the event (flats="ppx")
    pythia/seed ~ Uniform(0, 1)        or: one seed of Pythia's own generator (flats="native")
    tau-/channel, tau+/channel         each tau's decay channel (tau_channel=True)
    tag final_state = [[pdg, E, px, py, pz], ...]
    tag <observable> for each chosen observable
    calorimeter ~ Normal(deposit(visible final state), noise)    (calorimeter=...)

and returns the chosen observable as a float64 tensor. ``init()`` runs once, at
construction, on a fixed init seed and is not part of any trace. A failed
``next()`` is retried (up to 10 times); the draws of failed tries stay in the trace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pythia8mc
import torch

import ppx

from ..calorimeter import Calorimeter, IncomingParticle
from .decays import TauChannelHandler, tau_channel_handler
from .engine import (
    DEFAULT_INIT_SEED,
    MAX_SEED,
    NativeRecorder,
    PPXSource,
    PythiaEngine,
)
from .observables import NEUTRINOS, ReadOut, make_observables
from .settings import (
    PythiaSettingsError,
    configure,
    describe,
    initialise,
    load_settings,
)

__all__ = ["PythiaSimulator", "visible_particles"]

MAX_TRIES = 10


class PythiaSimulator:
    """Pythia 8 as a no-argument PPX program.

    Arguments:
        preset_or_settings: a preset name, a ``.cmnd`` path or ``readString`` lines.
        observables: names from :data:`~ppx.simulators.pythia.observables.OBSERVABLES`,
            each tagged under its name.
        result: the observable returned (default: the first).
        calorimeter: observe the visible final state through this toy calorimeter
            (address ``calorimeter``).
        control_flats: let the engine choose the uniforms (or the seed).
        flats: ``"ppx"`` (one PPX draw per ``flat()``), ``"native"`` (Pythia's own
            generator, re-seeded per event from one PPX draw ``pythia/seed``; the
            number of uniforms is tagged ``pythia/flat_count``), or any
            ``Callable[[], float]`` (e.g. an ``ArraySource``; no PPX draws).
        tau_channel: draw every tau's decay channel as a controlled PPX latent (see
            :mod:`ppx.simulators.pythia.decays`).
        init_seed: seed of ``init()``.

    Raises:
        PythiaSettingsError: bad settings or a failed ``init()``.
        ValueError: an unknown observable or ``flats``.

    Example:
        >>> sim = PythiaSimulator("ee_z_hadrons", observables=["charged_multiplicity"])
        >>> trace = ppx.LocalModel(sim).run()
        >>> trace["charged_multiplicity"]
    """

    def __init__(
        self,
        preset_or_settings: str | Path | Sequence[str] = "ee_z_hadrons",
        observables: Sequence[str] = ("charged_multiplicity",),
        result: str | None = None,
        calorimeter: Calorimeter | None = None,
        control_flats: bool = False,
        flats: str | Callable[[], float] = "ppx",
        tau_channel: bool = False,
        init_seed: int = DEFAULT_INIT_SEED,
    ) -> None:
        self.observables = make_observables(list(observables))
        self.result = result or next(iter(self.observables), None)
        if self.result is not None and self.result not in self.observables:
            raise ValueError(f"result {self.result!r} is not one of the observables")
        self.calorimeter = calorimeter
        self.control_flats = control_flats
        self.engine = _engine(flats, control_flats, init_seed)
        self.pythia = configure(load_settings(preset_or_settings))
        self.tau_handler: TauChannelHandler | None = (
            tau_channel_handler(self.pythia) if tau_channel else None
        )
        handled = (15, -15) if tau_channel else ()
        try:
            initialise(self.pythia, self.engine, self.tau_handler, handled, init_seed)
        except PythiaSettingsError as error:
            raise PythiaSettingsError(
                f"{error} (settings: {describe(preset_or_settings)})"
            ) from None
        self._native = NativeRecorder(self.pythia) if self.engine is None else None
        if self.engine is not None:
            self.engine.start_events()
        self._seed_prior = PPXSource().distribution

    def __call__(self) -> torch.Tensor | None:
        """Generate, tag and (optionally) observe one event; return the chosen observable."""
        if self.tau_handler is not None:
            self.tau_handler.chosen.clear()
        event = ReadOut(self.generate())  # the record read once, for every use below
        ppx.tag(torch.from_numpy(event.final), "final_state")
        values = {}
        for name, observable in self.observables.items():
            values[name] = torch.tensor(observable(event), dtype=torch.float64)
            ppx.tag(values[name], name)
        if self.calorimeter is not None:
            self.calorimeter.observe(visible_particles(event), name="calorimeter")
        return values.get(self.result)

    def generate(self) -> pythia8mc.Event:
        """Run ``pythia.next()`` until it succeeds; return Pythia's event record.

        Raises:
            RuntimeError: ``MAX_TRIES`` failures in a row.
        """
        if self._native is not None:
            u = float(ppx.sample(self._seed_prior, name="pythia/seed", control=self.control_flats))
            _, count = self._native.next(1 + int(u * (MAX_SEED - 1)))
            ppx.tag(count, "pythia/flat_count")
            return self.pythia.event
        engine = self.engine
        assert engine is not None  # no native recorder: the engine feeds the flats
        engine.start_event()
        for _ in range(MAX_TRIES):
            ok = self.pythia.next()
            engine.raise_pending()
            if ok:
                return self.pythia.event
        raise RuntimeError(f"Pythia failed {MAX_TRIES} events in a row")


def _engine(flats: str | Callable[[], float], control: bool, init_seed: int) -> PythiaEngine | None:
    if flats == "ppx":
        return PythiaEngine(PPXSource(control), init_seed)
    if flats == "native":
        return None
    if callable(flats):
        return PythiaEngine(flats, init_seed)
    raise ValueError(f"flats must be 'ppx', 'native' or a callable, got {flats!r}")


def visible_particles(event: pythia8mc.Event | ReadOut) -> list[IncomingParticle]:
    """The calorimeter's incoming particles: final state without neutrinos, ``pz > 0``."""
    final = event.particles if isinstance(event, ReadOut) else ReadOut(event).particles
    return [
        IncomingParticle(p.id(), (p.e(), p.px(), p.py(), p.pz()))
        for p in final
        if abs(p.id()) not in NEUTRINOS and p.pz() > 0
    ]
