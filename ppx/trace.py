"""Execution traces: every draw of one run of a program, at its address."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["Draw", "Trace"]


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
    """

    __slots__ = (
        "_log_prob",
        "address",
        "base",
        "controlled",
        "distribution",
        "name",
        "observed",
        "statement",
        "value",
    )

    def __init__(
        self,
        address: str,
        base: str,
        name: str | None,
        distribution: torch.distributions.Distribution | None,
        value: Any,
        controlled: bool,
        observed: bool,
        statement: str = "sample",
    ) -> None:
        self.address = address
        self.base = base
        self.name = name
        self.distribution = distribution
        self.value = value
        self.controlled = controlled
        self.observed = observed
        self.statement = statement
        self._log_prob: float | None = None

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


def _log_prob(distribution: torch.distributions.Distribution | None, value: Any) -> float:
    if value is None or distribution is None:
        return 0.0
    value = torch.as_tensor(value)
    try:
        return float(distribution.log_prob(value).sum())
    except ValueError:  # argument validation: the value lies outside the support
        if bool(distribution.support.check(value).all()):
            raise
        return -math.inf


class Trace:
    """The record of one run: draws in order, tags, and the program's result.

    Example:
        >>> trace = model.run()
        >>> trace["mu"], trace.log_likelihood, trace.log_joint
    """

    __slots__ = ("_by_key", "draws", "result", "tags")

    def __init__(self) -> None:
        self.draws: list[Draw] = []
        self.tags: dict[str, Any] = {}
        self.result: Any = None
        self._by_key: dict[str, Draw] = {}

    def add(self, draw: Draw) -> None:
        """Append a draw; it becomes reachable by address and (first use of) name."""
        self.draws.append(draw)
        self._by_key[draw.address] = draw
        if draw.name is not None:
            self._by_key.setdefault(draw.name, draw)

    def draw(self, key: str) -> Draw:
        """The draw with this address or name (the first draw of a repeated name)."""
        try:
            return self._by_key[key]
        except KeyError:
            raise KeyError(f"no draw named or addressed {key!r} in this trace") from None

    def __getitem__(self, key: str) -> Any:
        """Value of a draw by name or address, else of a tag."""
        if key in self._by_key:
            return self._by_key[key].value
        if key in self.tags:
            return self.tags[key]
        raise KeyError(f"no draw or tag named {key!r} in this trace")

    def __contains__(self, key: str) -> bool:
        return key in self._by_key or key in self.tags

    def __iter__(self) -> Iterator[Draw]:
        return iter(self.draws)

    def __len__(self) -> int:
        return len(self.draws)

    @property
    def samples(self) -> list[Draw]:
        """The latent draws: sample statements without data."""
        return [d for d in self.draws if d.is_latent]

    @property
    def observes(self) -> list[Draw]:
        """The observed draws (observes with data, and samples conditioned on data)."""
        return [d for d in self.draws if d.observed]

    @property
    def log_likelihood(self) -> float:
        """Sum of log-probabilities of the observed draws."""
        return sum(d.log_prob for d in self.draws if d.observed)

    @property
    def log_prior(self) -> float:
        """Sum of log-probabilities of the latent draws."""
        return sum(d.log_prob for d in self.draws if d.is_latent)

    @property
    def log_joint(self) -> float:
        """log p(latents, observations) of this run."""
        return self.log_prior + self.log_likelihood

    def __repr__(self) -> str:
        return f"Trace({len(self.draws)} draws, {len(self.tags)} tags, result={self.result!r})"
