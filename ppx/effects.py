"""The effect-handler stack behind ``ppx.sample``, ``ppx.observe``, ``ppx.tag`` and ``ppx.sampler``.

As in Pyro's ``poutine``: a primitive builds an :class:`Effect` and hands it to
the active handlers, innermost first, until one of them marks it ``done``
(a terminal handler: the PPX server connection, or the in-process recorder of
:class:`ppx.LocalModel`). Handlers dispatch by method, one per effect type
(``process_sample``, ``process_observe``, ``process_tag``, ``process_sampler``),
as poutine's ``_pyro_sample``. The stack lives in a :class:`contextvars.ContextVar`,
so servers and engines may run in threads without seeing each other's handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import ClassVar, Literal, TypeVar

from torch import Tensor
from torch.distributions import Distribution

__all__ = ["Effect", "EffectType", "H", "Handler", "apply_stack", "current_handlers"]

EffectType = Literal["sample", "observe", "tag", "sampler"]

H = TypeVar("H", bound="Handler")

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
        value: the observed/tagged value on entry; the drawn value on exit
            (for ``"sampler"``: the draw function).
        control: whether the engine may choose the value of a sample.
        replace: the sample is a draw of a rejection-sampling loop (see ``ppx.sample``).
        done: set by the handler that produced the final value.
    """

    type: EffectType
    address: str
    name: str | None
    distribution: Distribution | None
    value: object = None
    control: bool = True
    replace: bool = False
    done: bool = False


class Handler:
    """Base of all handlers: a context manager that pushes itself on the stack.

    :meth:`process` dispatches an effect to the method of its type; subclasses
    override those methods (or :meth:`process` itself, to treat every type
    alike, as ``ppx.scope`` does). A method that produced the final value sets
    ``effect.done``.
    """

    _token: Token[tuple[Handler, ...]] | None = None

    #: The method of each effect type, per class (made once: dispatch happens per draw).
    dispatch: ClassVar[dict[str, Callable[[Handler, Effect], None]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.dispatch = {kind: getattr(cls, f"process_{kind}") for kind in _TYPES}

    def process(self, effect: Effect) -> None:
        """Handle one effect: call ``process_<type>``."""
        self.dispatch[effect.type](self, effect)

    def process_sample(self, effect: Effect) -> None:
        """Handle a ``ppx.sample`` (pass it on by default)."""

    def process_observe(self, effect: Effect) -> None:
        """Handle a ``ppx.observe`` (pass it on by default)."""

    def process_tag(self, effect: Effect) -> None:
        """Handle a ``ppx.tag`` (pass it on by default)."""

    def process_sampler(self, effect: Effect) -> None:
        """Handle a ``ppx.sampler`` request (pass it on by default)."""

    def __enter__(self: H) -> H:
        self._token = _HANDLERS.set(_HANDLERS.get() + (self,))
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _HANDLERS.reset(self._token)
        self._token = None


_TYPES: tuple[EffectType, ...] = ("sample", "observe", "tag", "sampler")
Handler.dispatch = {kind: getattr(Handler, f"process_{kind}") for kind in _TYPES}


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
    distribution = effect.distribution
    if distribution is not None and effect.type == "sample":
        effect.value = distribution.sample()
    elif distribution is not None and effect.type == "sampler":
        effect.value = _prior_sampler(distribution)
    effect.done = True
    return effect


def _prior_sampler(distribution: Distribution) -> Callable[[], float]:
    def draw() -> float:
        value: Tensor = distribution.sample()
        return float(value)

    return draw
