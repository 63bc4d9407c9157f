"""The simulator's side of a batched run (extension ``batched_draws``).

Pythia calls ``flat()`` thousands of times an event and a Gillespie run makes
10^4 draws; one ZeroMQ round trip each would dominate the run. When both peers
announce ``batched_draws``:

* **record mode**: the simulator makes its uncontrolled draws itself (the
  engine seeds them with ``Run.seed``) and reports them in bulk, as
  :class:`~ppx.protocol.messages.DrawBlock` s attached to its next message;
* **replay mode**: ``Run.replay`` carries the values the engine already knows
  (a replayed trace, the unchanged sites of an MCMC proposal, observed
  values); the simulator uses them locally and asks only about the rest;
* observes and tags, which need no answer, travel with the next message too.

The engine numbers the reported draws exactly as if each had come as its own
``Sample`` (:mod:`ppx.engine.blocks`), so the trace equals a draw-by-draw one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

from ppx.addressing import address_stem
from ppx.errors import ProtocolError
from ppx.prior_draws import prior_sample
from ppx.protocol import messages as m
from ppx.sites import (
    DrawLog,
    InstanceCounter,
    KnownSite,
    PendingBlock,
    PriorChunk,
    ValueRange,
    as_value,
    scalar_sampler,
)

__all__ = ["LocalDraws"]


class LocalDraws:
    """One batched run on the simulator side: replayed values, local draws, the report.

    Counts every draw's instance as the engine does, so that replayed values
    keyed by full address find their draws.
    """

    def __init__(self, run: m.Run) -> None:
        self.record = run.record
        if run.record:  # the CPU generator only: torch.manual_seed costs 60x more
            torch.default_generator.manual_seed(run.seed)
        self.named: dict[str, np.ndarray] = {}
        self.stems: dict[str, ValueRange] = {}
        for block in run.replay:
            values = np.asarray(block.values, dtype=np.float64)
            if values.ndim == 0 or len(values) == 0:
                raise ProtocolError(f"the replayed block {block.key!r} holds no rows of values")
            if block.first_instance == 0:
                self.named[block.key] = values[0]
            else:
                self.stems[block.key] = ValueRange(block.first_instance, values)
        self.counter = InstanceCounter()
        self.log = DrawLog()

    def _known(self, stem: str, instance: int, base: str, name: str | None) -> object:
        """The engine's value for this draw (observed first, as the recorder does); or None."""
        named = self.named
        if named and name is not None and name in named:
            return named[name]
        replayed = self.stems.get(stem)
        row = None if replayed is None else replayed.row(instance)
        if row is not None:
            return row
        return named.get(base) if named else None

    def sample(
        self, base: str, name: str | None, distribution: Distribution, control: bool
    ) -> Tensor | None:
        """The value of a sample made locally, or None: the engine must be asked."""
        stem = address_stem(base, distribution)
        known = self._known(stem, self.counter.count(stem), base, name)
        if known is not None:
            value = as_value(known, distribution)
        elif self.record and not control:
            value = prior_sample(distribution)  # as the engine draws it in-process
        else:
            return None
        self.log.add(base, name, distribution, control, value)
        return value

    def observe(
        self, base: str, name: str | None, distribution: Distribution | None, value: object
    ) -> None:
        """Report an observe with the next message instead of a round trip of its own."""
        self.counter.count(address_stem(base, distribution))
        self.log.add_statement("observe", base, name, distribution, _tensor_or_none(value))

    def tag(self, address: str, name: str | None, value: object) -> None:
        """Report a tag with the next message."""
        self.log.add_statement("tag", address, name, None, _tensor_or_none(value))

    def flush(self) -> tuple[m.DrawBlock, ...]:
        """The report of the local draws since the last message; empties it."""
        if not self.log:
            return ()
        return tuple(_draw_block(block) for block in self.log.take())

    def sampler(
        self,
        base: str,
        name: str | None,
        distribution: Distribution,
        control: bool,
        ask: Callable[[], float],
    ) -> Callable[[], float]:
        """A fast ``ppx.sampler`` for this run; ``ask`` makes a draw a round trip."""
        stem = address_stem(base, distribution)
        observed = self.named.get(name) if name is not None else None
        if observed is None:
            observed = self.named.get(base)
        known = KnownSite(None if observed is None else float(observed), self.stems.get(stem))
        prior = PriorChunk(distribution) if self.record and not control else None
        opener = self.log.opener(base, name, distribution, control, first=lambda: 0)
        return scalar_sampler(self.counter, stem, known, prior, opener, ask)


def _tensor_or_none(value: object) -> Tensor | None:
    return None if value is None else torch.as_tensor(value)


def _draw_block(block: PendingBlock) -> m.DrawBlock:
    first = block.values[0]
    if first is None:  # an observe without a value
        values = None
    elif isinstance(first, Tensor):
        stacked = torch.stack([torch.as_tensor(v) for v in block.values])
        values = stacked.to(torch.float64).numpy(force=True)
    else:
        values = np.asarray(block.values, dtype=np.float64)
    return m.DrawBlock(
        block.address, block.distribution, values, block.name, block.control, block.statement
    )
