"""What the estimators differentiate: summaries of trajectories, accumulated as they run.

A trajectory is piecewise constant between reactions, so two kinds of summary
cover the usual losses without storing it:

* **time-dependent**: the state at each observation time ``t_i`` (the state in
  force at ``t_i``, as :func:`ppx.simulators.gillespie.make_model` reports it);
* **steady-state**: the time averages of ``x`` and ``x**2`` over a window
  ``[average_from, t_end]``, ``t_end`` the last observation time.

An :class:`Observable` maps the summaries of a batch to one number per
trajectory; :func:`observable` builds the common ones by species name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ppx.simulators.gillespie.networks import ReactionNetwork, check_times

__all__ = ["Observable", "Summaries", "SummaryAccumulator", "Window", "observable"]

KINDS = ("at", "mean", "variance", "second_moment")


@dataclass(frozen=True)
class Window:
    """Observation times and the steady-state averaging window.

    Raises:
        ValueError: times not finite, non-negative and increasing, or a window
            that does not start before the last time.
    """

    times: tuple[float, ...]
    average_from: float = 0.0

    def __post_init__(self) -> None:
        times = tuple(float(t) for t in check_times(self.times))
        object.__setattr__(self, "times", times)
        if not 0 <= self.average_from < times[-1]:
            raise ValueError(
                f"average_from: must be in [0, {times[-1]}) (the last observation time), "
                f"got {self.average_from}"
            )

    @property
    def t_end(self) -> float:
        """Where every trajectory stops: the last observation time."""
        return self.times[-1]


@dataclass(frozen=True)
class Summaries:
    """Per-trajectory summaries, leading dimensions ``batch`` (and more).

    Attributes:
        at_times: ``(..., T, S)`` the state at each observation time.
        mean: ``(..., S)`` time average of the state over the window.
        second_moment: ``(..., S)`` time average of its square.
    """

    at_times: Tensor
    mean: Tensor
    second_moment: Tensor


class SummaryAccumulator:
    """Builds :class:`Summaries` one segment ``[t, t + dt)`` of constant state at a time.

    Works for any leading shape; every update takes a mask of the trajectories
    still running. Gradients flow through the states and, for the averages,
    through ``dt`` (the pathwise part of Gumbel-softmax estimators).
    """

    def __init__(self, window: Window, shape: Sequence[int], like: Tensor) -> None:
        self.window = window
        self.times = torch.tensor(window.times, dtype=like.dtype, device=like.device)
        zeros = torch.zeros(*shape, like.shape[-1], dtype=like.dtype, device=like.device)
        self.at_times = zeros.unsqueeze(-2).repeat_interleave(len(window.times), -2)
        self.total = zeros
        self.total_square = zeros.clone()

    def add(self, x: Tensor, t: Tensor, dt: Tensor, running: Tensor) -> None:
        """The state ``x`` held on ``[t, t + dt)`` for the ``running`` trajectories."""
        t_next = t + dt
        holds = (t.unsqueeze(-1) <= self.times) & (self.times < t_next.unsqueeze(-1))
        holds = holds & running.unsqueeze(-1)
        self.at_times = torch.where(holds.unsqueeze(-1), x.unsqueeze(-2), self.at_times)
        start = torch.clamp(t, min=self.window.average_from)
        overlap = (torch.clamp(t_next, max=self.window.t_end) - start).clamp_min(0.0)
        overlap = torch.where(running, overlap, torch.zeros_like(overlap)).unsqueeze(-1)
        self.total = self.total + overlap * x
        self.total_square = self.total_square + overlap * x * x

    def copy_from(self, other: SummaryAccumulator, where: Tensor) -> None:
        """Take ``other``'s summaries so far where ``where`` (paths branching off ``other``'s:
        ``where`` has this accumulator's leading shape, ``other`` a prefix of it)."""
        extra = self.total.dim() - other.total.dim()

        def lift(tensor: Tensor, trailing: int) -> Tensor:
            shape = tensor.shape[: tensor.dim() - trailing]
            return tensor.reshape(*shape, *([1] * extra), *tensor.shape[tensor.dim() - trailing :])

        self.at_times = torch.where(where[..., None, None], lift(other.at_times, 2), self.at_times)
        self.total = torch.where(where[..., None], lift(other.total, 1), self.total)
        self.total_square = torch.where(
            where[..., None], lift(other.total_square, 1), self.total_square
        )

    def result(self) -> Summaries:
        """The summaries of the finished trajectories."""
        span = self.window.t_end - self.window.average_from
        return Summaries(self.at_times, self.total / span, self.total_square / span)


Observable = Callable[[Summaries], Tensor]
"""Summaries of a batch -> one value per trajectory (shape: the leading dimensions)."""


def observable(
    network: ReactionNetwork, kind: str, species: str, time_index: int | None = None
) -> Observable:
    """A common observable by species name.

    Arguments:
        network: The network whose species are named.
        kind: ``"at"`` (the count at observation time ``time_index``), ``"mean"``
            (its time average over the window), ``"second_moment"`` or
            ``"variance"`` (time average of ``x**2``, and that minus the squared mean).
        species: A species of ``network``.
        time_index: For ``"at"``: which observation time (0-based).

    Raises:
        ValueError: an unknown kind or species, or ``time_index`` missing or given wrongly.
    """
    if kind not in KINDS:
        raise ValueError(f"observable: kind must be one of {KINDS}, got {kind!r}")
    if species not in network.species:
        raise ValueError(
            f"observable: the network has no species {species!r}; it produces "
            f"{list(network.species)}"
        )
    s = network.species.index(species)
    if (kind == "at") != (time_index is not None):
        raise ValueError("observable: give time_index for kind 'at', and only for it")
    if time_index is not None:
        i = int(time_index)
        return lambda summaries: summaries.at_times[..., i, s]
    if kind == "mean":
        return lambda summaries: summaries.mean[..., s]
    if kind == "second_moment":
        return lambda summaries: summaries.second_moment[..., s]
    return lambda summaries: summaries.second_moment[..., s] - summaries.mean[..., s] ** 2
