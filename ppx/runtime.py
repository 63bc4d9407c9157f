"""The effect-handler stack behind ``ppx.sample``, ``ppx.observe`` and ``ppx.tag``.

As in Pyro's ``poutine``: a primitive builds an :class:`Effect` and hands it to
the active handlers, innermost first, until one of them marks it ``done``
(a terminal handler: the PPX server connection, or the in-process recorder of
:class:`ppx.LocalModel`). The stack lives in a :class:`contextvars.ContextVar`,
so servers and engines may run in threads without seeing each other's handlers.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import torch

__all__ = ["Effect", "Handler", "apply_stack", "current_handlers"]

EffectType = Literal["sample", "observe", "tag", "sampler"]

_HANDLERS: ContextVar[tuple[Handler, ...]] = ContextVar("ppx_handlers", default=())


@dataclass(slots=True)
class Effect:
    """One call of a PPX primitive on its way through the handler stack.

    Attributes:
        type: ``"sample"``, ``"observe"``, ``"tag"``, or ``"sampler"`` (asks the
            terminal handler for a fast repeated-draw function, see ``ppx.sampler``).
        address: the base address (see :mod:`ppx.addressing`); scopes prefix it.
        name: the user's name for the draw, or ``None``.
        distribution: the ``torch.distributions`` object (``None`` for tags).
        value: the observed/tagged value on entry; the drawn value on exit.
        control: whether the engine may choose the value of a sample.
        done: set by the handler that produced the final value.
    """

    type: EffectType
    address: str
    name: str | None
    distribution: torch.distributions.Distribution | None
    value: Any = None
    control: bool = True
    done: bool = False


class Handler:
    """Base of all handlers: a context manager that pushes itself on the stack.

    Subclasses override :meth:`process`, which may modify the effect and must
    set ``effect.done`` when it produced the final value.
    """

    _token = None

    def process(self, effect: Effect) -> None:
        """Handle one effect (override)."""

    def __enter__(self) -> Handler:
        self._token = _HANDLERS.set(_HANDLERS.get() + (self,))
        return self

    def __exit__(self, *exc_info: object) -> None:
        _HANDLERS.reset(self._token)
        self._token = None


def current_handlers() -> tuple[Handler, ...]:
    """The active handlers, outermost first."""
    return _HANDLERS.get()


def apply_stack(effect: Effect) -> Effect:
    """Run ``effect`` through the active handlers, innermost first.

    With no terminal handler active, a sample is drawn from its distribution and
    observes and tags are no-ops, so a simulator also runs as plain Python.
    """
    for handler in reversed(_HANDLERS.get()):
        handler.process(effect)
        if effect.done:
            return effect
    if effect.type == "sample":
        effect.value = effect.distribution.sample()
    elif effect.type == "sampler":
        distribution = effect.distribution
        effect.value = lambda: float(distribution.sample())
    effect.done = True
    return effect
