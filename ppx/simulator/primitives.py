"""The simulator-side API: ``sample``, ``observe``, ``tag`` and ``scope``."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor
from torch.distributions import Distribution

from ppx.addressing import call_site
from ppx.effects import Effect, Handler, apply_stack

__all__ = ["observe", "sample", "sampler", "scope", "tag"]


def sample(
    distribution: Distribution,
    name: str | None = None,
    control: bool = True,
    replace: bool = False,
) -> Tensor:
    """Draw a random value that the inference engine can see and choose.

    Arguments:
        distribution: a ``torch.distributions`` object (Pyro's work too).
        name: a stable name for the draw; without one the call site names it.
        control: ``False`` makes the draw come from the prior, never proposed.
        replace: the draw is made in a rejection-sampling loop (drawn again
            until accepted). Inference compilation then learns only the
            accepted draw, as with pyprob's ``replace=True``, but keeps the
            importance weight exact when the acceptance rate depends on other
            latents (see :mod:`ppx.inference.ic.loops`).

    Returns:
        The value chosen by the engine (a prior draw when none is attached).

    Example:
        >>> mu = sample(torch.distributions.Normal(0.0, 1.0), name="mu")
    """
    address = name if name is not None else call_site(1)
    effect = Effect("sample", address, name, distribution, None, control, replace)
    return cast(Tensor, apply_stack(effect).value)


def sampler(
    distribution: Distribution,
    name: str | None = None,
    control: bool = False,
) -> Callable[[], float]:
    """A function for many scalar draws at one site, cheaper per call than ``sample``.

    Each call of the returned function is one ``float(ppx.sample(distribution,
    name, control))``, with the same addresses (``name__Kind__1``, ``__2``, ...),
    but it skips building an effect per draw: for a simulator's own random
    number generator (Pythia's ``flat()``), which may be called 10^4 times a
    run. Served with the ``batched_draws`` extension, uncontrolled draws are
    made locally and replayed values used without a round trip. Valid for the
    run in which it was made.

    Example:
        >>> flat = sampler(torch.distributions.Uniform(0.0, 1.0), name="flat")
        >>> u = flat()
    """
    if distribution.batch_shape + distribution.event_shape != torch.Size():
        raise ValueError(
            f"ppx.sampler draws scalars; {type(distribution).__name__} at "
            f"{name or 'this site'} has shape {tuple(distribution.batch_shape)}"
        )
    address = name if name is not None else call_site(1)
    effect = apply_stack(Effect("sampler", address, name, distribution, None, control))
    return cast(Callable[[], float], effect.value)


def observe(
    distribution: Distribution,
    value: object = None,
    name: str | None = None,
) -> None:
    """Condition on ``value`` under ``distribution`` (a likelihood term).

    The engine may supply the observed value by name or address; that value
    takes precedence over ``value``.
    """
    address = name if name is not None else call_site(1)
    apply_stack(Effect("observe", address, name, distribution, value))


def tag(value: object, name: str) -> None:
    """Record ``value`` under ``name`` in the trace (no randomness involved)."""
    apply_stack(Effect("tag", name, name, None, value))


class scope(Handler):  # lower case: used like a function, ``with ppx.scope("jet"):``
    """Prefix the base address of every draw inside the block with ``prefix/``.

    Example:
        >>> with scope("event3"):
        ...     e = sample(torch.distributions.Exponential(1.0), name="energy")
        ... # name and base address "event3/energy"
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def process(self, effect: Effect) -> None:
        effect.address = f"{self.prefix}/{effect.address}"
        if effect.name is not None:
            effect.name = f"{self.prefix}/{effect.name}"
