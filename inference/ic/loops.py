"""Rejection-sampling loops in a run's controlled draws: fold each into its accepted try.

A simulator draws in a loop until a test passes (GENBOD's weight test, Pythia's
accept/reject flats) and marks those draws ``ppx.sample(..., replace=True)``.
Inference compilation (Lezcano Casado, Baydin et al., "Improvements to
Inference Compilation for Probabilistic Programming in Large-Scale Scientific
Simulators", 2017) then treats a loop as one draw per address: the network
learns only the accepted try, and proposes every try of the loop from the
state before the loop, so that the number of tries does not change the
trace's addresses.

:class:`LoopFolder` is the one rule both sides apply, the dataset records
(:func:`~ppx.inference.ic.records.record_from_trace`) and the controller at
inference (:class:`~ppx.inference.ic.controller.NetworkController`):

* a loop draw at a stem already drawn since the loop began starts that
  stem's draw again: what was kept from its previous try on is dropped (the
  records), or the network's state is rewound to before it (the controller);
* any draw that is not a loop draw ends the loop;
* a loop draw's address is ``stem__loopK``, with ``K`` counting the loops at
  that stem in the run, independent of how many tries each loop took.

The importance weight is not folded: every try's ``log p - log q`` counts,
which keeps it exact. Keeping only the accepted try's ratio (as pyprob does)
leaves out the ratio of the loop's acceptance rates under proposal and prior,
``Z_q / Z_p``, which is wrong when the acceptance rate depends on other
latents (``ppx.simulators.rejection`` is built to show it). Counting every
try is exact but needs care with the variance: a try the loop rejects where
the learned proposal is small weighs ``p / q``, unbounded. So the controller
draws a loop's first try from the mixture ``(1 - s) q + s p`` (``s`` =
:data:`~ppx.inference.ic.controller.LOOP_PRIOR_SHARE`, 0.5), whose ratio is at
most ``1 / s``, and every later try from the prior (ratio 1): the weight stays
exact and its variance finite; the price is that a share of the loops' tries
come from the prior.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ppx.addressing import split_address

__all__ = ["LoopFolder", "Rewind", "loop_address", "stem_of"]

S = TypeVar("S")

_LOOP = "__loop"


def stem_of(address: str) -> str:
    """The stem ``base__Kind`` of a full address ``base__Kind__instance`` (else ``address``)."""
    split = split_address(address)
    return address if split is None else split[0]


def loop_address(stem: str, ordinal: int) -> str:
    """The folded address of the ``ordinal``-th loop at ``stem``: ``stem__loopK``."""
    return f"{stem}{_LOOP}{ordinal}"


@dataclass(frozen=True)
class Rewind(Generic[S]):
    """Go back to before a previous try: keep ``length`` entries, restore ``state``."""

    length: int
    state: S


@dataclass
class LoopFolder(Generic[S]):
    """The loop bookkeeping of one run (make a new one per run).

    ``S`` is what the caller needs restored on a rewind (the controller's LSTM
    state); the records pass ``None``.
    """

    _ordinals: dict[str, int] = field(default_factory=dict)  # loops so far, by stem
    _open: dict[str, str] = field(default_factory=dict)  # the open loop's addresses, by stem
    _tries: dict[str, Rewind[S]] = field(default_factory=dict)  # before each stem's last try
    retried: bool = False
    """Whether the open loop has been tried again (its first try was rejected)."""

    def fold(
        self, address: str, replace: bool, length: int, state: S
    ) -> tuple[str, Rewind[S] | None]:
        """One controlled draw: its folded address, and where to rewind to first.

        Arguments:
            address: the draw's full address.
            replace: whether it is a loop draw.
            length: how many entries the caller has kept before this draw.
            state: the caller's state before this draw.

        Returns:
            The address to use for the draw (``address`` itself outside loops),
            and ``None`` or the :class:`Rewind` to apply before using it.
        """
        if not replace:
            self._open.clear()
            self._tries.clear()
            self.retried = False
            return address, None
        stem = stem_of(address)
        rewind = self._tries.get(stem)
        if rewind is not None:  # a new try: forget what came after the previous one
            self._tries = {s: r for s, r in self._tries.items() if r.length < rewind.length}
            length, state = rewind.length, rewind.state
            self.retried = True
        elif stem not in self._open:
            self._ordinals[stem] = ordinal = self._ordinals.get(stem, 0) + 1
            self._open[stem] = loop_address(stem, ordinal)
        self._tries[stem] = Rewind(length, state)
        return self._open[stem], rewind
