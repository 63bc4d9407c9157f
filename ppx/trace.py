"""Execution traces: every draw of one run of a program, at its address."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ppx.addressing import full_address
from ppx.sites import as_value

__all__ = ["Draw", "LazyDraws", "Trace", "scalar_normal_log_prob"]


@dataclass(slots=True, eq=False, repr=False)
class Draw:
    """One random draw (sample or observe) of a run.

    The log-probability is computed on first access and cached: simulators make
    up to 10^4 draws a run, and most engines never look at most of them.

    Attributes:
        address: full address ``base__Kind__instance`` (see :mod:`ppx.addressing`).
        base: the base address as the simulator sent it.
        name: the user's name, or ``None``.
        distribution: the ``torch.distributions`` object.
        value: the value (``None`` for an observe without data).
        controlled: the engine chose the value (False for ``control=False``).
        observed: the draw is an observation (or a sample conditioned on data).
        statement: ``"sample"`` or ``"observe"``: which primitive made the draw
            (an observe without data is neither latent nor observed).
        replace: the draw is one try of a rejection-sampling loop (``ppx.sample``'s
            ``replace``).
    """

    address: str
    base: str
    name: str | None
    distribution: torch.distributions.Distribution | None
    value: Tensor | None
    controlled: bool
    observed: bool
    statement: str = "sample"
    replace: bool = False
    _log_prob: float | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def is_latent(self) -> bool:
        """A sample statement without data: a latent variable of the program."""
        return self.statement == "sample" and not self.observed

    @property
    def log_prob(self) -> float:
        """log p(value) under the draw's distribution, summed over its event.

        ``-inf`` for a value outside the distribution's support (MCMC moves
        replay old values under new distributions).
        """
        if self._log_prob is None:
            self._log_prob = _log_prob(self.distribution, self.value)
        return self._log_prob

    def __repr__(self) -> str:
        kind = "observed" if self.observed else "latent" if self.is_latent else "unobserved"
        what = f"{self.statement} {kind} {self.address!r}"
        return f"Draw({what}, name={self.name!r}, value={self.value!r})"


_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def scalar_normal_log_prob(
    distribution: torch.distributions.Distribution, value: object
) -> float | None:
    """log p(value) of a scalar ``Normal`` at a scalar value, in plain floats; else None.

    ``Normal.log_prob`` costs ~30 us a call (argument validation, four tensor
    ops); in floats it is ~1 us, which matters for a run of a few draws. It is
    computed in double precision (torch's in the distribution's dtype, so the
    two differ in the last digits of a float32). None, to take torch's path,
    for anything else: another distribution, shapes, invalid parameters or
    values (where torch's validation has the say).
    """
    if type(distribution) is not torch.distributions.Normal:
        return None
    loc, scale = distribution.loc, distribution.scale
    if isinstance(value, Tensor):
        if value.shape:
            return None
    elif not isinstance(value, int | float):
        return None
    if loc.shape or scale.shape:
        return None
    x, mean, std = float(value), float(loc), float(scale)
    if not (std > 0 and math.isfinite(x) and math.isfinite(mean) and math.isfinite(std)):
        return None
    z = (x - mean) / std
    return -0.5 * z * z - math.log(std) - _HALF_LOG_2PI


def _log_prob(distribution: torch.distributions.Distribution | None, value: Tensor | None) -> float:
    if value is None or distribution is None:
        return 0.0
    fast = scalar_normal_log_prob(distribution, value)
    if fast is not None:
        return fast
    value = torch.as_tensor(value)
    try:
        return float(distribution.log_prob(value).sum())
    except ValueError:  # argument validation: the value lies outside the support
        support = distribution.support
        if support is None or bool(support.check(value).all()):
            raise
        return -math.inf


@dataclass(slots=True, eq=False, repr=False)
class LazyDraws:
    """Consecutive uncontrolled draws at one base address, kept as one array.

    A batched simulator reports thousands of such draws a run (Pythia's
    ``flat()``); they become :class:`Draw` objects only when someone looks at
    them, and their summed log-probability is one vectorised call.
    """

    base: str
    name: str | None
    distribution: torch.distributions.Distribution
    values: np.ndarray
    stem: str
    first_instance: int

    def __len__(self) -> int:
        return len(self.values)

    @property
    def log_prob(self) -> float:
        """Sum of the draws' log-probabilities."""
        values = torch.from_numpy(self.values)
        if isinstance(self.distribution, torch.distributions.Categorical):
            values = values.long()
        return _log_prob(self.distribution, values)

    def expand(self) -> list[Draw]:
        """The draws, one :class:`Draw` each."""
        dist, base, name, stem = self.distribution, self.base, self.name, self.stem
        return [
            Draw(
                full_address(stem, self.first_instance + i),
                base,
                name,
                dist,
                as_value(row, dist),
                False,
                False,
            )
            for i, row in enumerate(self.values)
        ]


class Trace:
    """The record of one run: draws in order, tags, and the program's result.

    Example:
        >>> trace = model.run()
        >>> trace["mu"], trace.log_likelihood, trace.log_joint
    """

    __slots__ = ("_by_key", "_items", "_lazy", "result", "tags")

    def __init__(self) -> None:
        self._items: list[Draw | LazyDraws] = []
        self._lazy = 0  # LazyDraws among _items, not yet expanded
        self.tags: dict[str, Any] = {}
        self.result: Any = None
        self._by_key: dict[str, Draw] = {}

    @property
    def draws(self) -> list[Draw]:
        """Every draw, in order."""
        if self._lazy:
            self._expand()
        return self._items  # type: ignore[return-value] - expanded: Draws only

    def _expand(self) -> None:
        items: list[Draw | LazyDraws] = []
        for item in self._items:
            if isinstance(item, LazyDraws):
                for draw in item.expand():
                    items.append(draw)
                    self._index(draw)
            else:
                items.append(item)
        self._items = items
        self._lazy = 0

    def _index(self, draw: Draw) -> None:
        self._by_key[draw.address] = draw
        if draw.name is not None:
            first = self._by_key.setdefault(draw.name, draw)
            if draw.replace and first.replace:  # a rejection loop's name: its last try
                self._by_key[draw.name] = draw

    def add(self, draw: Draw) -> None:
        """Append a draw; it becomes reachable by address and (first use of) name.

        The name of a rejection loop's draws (``replace``) reaches the loop's
        last try, the accepted one, as the program goes on with it.
        """
        self._items.append(draw)
        self._index(draw)

    def add_lazy(self, draws: LazyDraws) -> None:
        """Append uncontrolled draws kept as an array until looked at."""
        self._items.append(draws)
        self._lazy += 1

    def _lookup(self, key: str) -> Draw | None:
        draw = self._by_key.get(key)
        if draw is None and self._lazy:
            self._expand()
            draw = self._by_key.get(key)
        return draw

    def draw(self, key: str) -> Draw:
        """The draw with this address or name (the first draw of a repeated name; the
        accepted, last, try of a rejection loop's name)."""
        draw = self._lookup(key)
        if draw is None:
            raise KeyError(f"no draw named or addressed {key!r} in this trace")
        return draw

    def __getitem__(self, key: str) -> Any:
        """Value of a draw by name or address, else of a tag."""
        draw = self._lookup(key)
        if draw is not None:
            return draw.value
        if key in self.tags:
            return self.tags[key]
        raise KeyError(f"no draw or tag named {key!r} in this trace")

    def __contains__(self, key: str) -> bool:
        return self._lookup(key) is not None or key in self.tags

    def __iter__(self) -> Iterator[Draw]:
        return iter(self.draws)

    def __len__(self) -> int:
        return sum(len(item) if isinstance(item, LazyDraws) else 1 for item in self._items)

    @property
    def samples(self) -> list[Draw]:
        """The latent draws: sample statements without data."""
        return [d for d in self.draws if d.is_latent]

    @property
    def observes(self) -> list[Draw]:
        """The observed draws (observes with data, and samples conditioned on data)."""
        return [d for d in self._items if isinstance(d, Draw) and d.observed]

    def controlled_latents(self) -> list[Draw]:
        """The latent draws the engine controls (what MCMC moves)."""
        return [d for d in self._items if isinstance(d, Draw) and d.controlled and d.is_latent]

    def replays_up_to(self, address: str) -> bool:
        """Whether a run replaying this trace's controlled values reaches ``address``
        with the same distribution: no uncontrolled (redrawn) latent draw before it."""
        for item in self._items:
            if isinstance(item, LazyDraws):
                return False
            if item.address == address:
                return True
            if item.is_latent and not item.controlled:
                return False
        return False

    @property
    def log_likelihood(self) -> float:
        """Sum of log-probabilities of the observed draws."""
        return sum(d.log_prob for d in self.observes)

    @property
    def log_prior(self) -> float:
        """Sum of log-probabilities of the latent draws."""
        return sum(d.log_prob for d in self._items if isinstance(d, LazyDraws) or d.is_latent)

    @property
    def log_joint(self) -> float:
        """log p(latents, observations) of this run."""
        return self.log_prior + self.log_likelihood

    def __repr__(self) -> str:
        return f"Trace({len(self)} draws, {len(self.tags)} tags, result={self.result!r})"
