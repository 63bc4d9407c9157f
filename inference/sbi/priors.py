"""The prior over flat ``theta`` implied by a program's parameter draws."""

from __future__ import annotations

from collections.abc import Sequence

from torch.distributions import Distribution, Independent

from ppx.inference.sbi.layout import Layout

__all__ = ["program_prior"]


def program_prior(distributions: Sequence[Distribution], layout: Layout) -> Distribution:
    """A distribution over flat ``theta`` from the parameter draws' own distributions.

    Right when those draws do not depend on other draws of the program (the
    distribution in one run is then the prior); pass ``prior=`` otherwise.

    Arguments:
        distributions: the distribution of each parameter block, in layout order.
        layout: the blocks (their keys name the culprit in errors).

    Raises:
        ValueError: a distribution's shape cannot be read as a vector.
    """
    vectors = [
        _as_vector(d, block.key) for d, block in zip(distributions, layout.parameters, strict=True)
    ]
    if len(vectors) == 1:
        return vectors[0]
    from sbi.utils import MultipleIndependent

    return MultipleIndependent(vectors)


def _as_vector(distribution: Distribution, key: str) -> Distribution:
    """The same distribution with event shape ``[d]``."""
    batch, event = distribution.batch_shape, distribution.event_shape
    if len(batch) + len(event) == 0:
        return Independent(distribution.expand((1,)), 1)
    if len(event) == 1 and len(batch) == 0:
        return distribution
    if len(event) == 0 and len(batch) == 1:
        return Independent(distribution, 1)
    raise ValueError(
        f"cannot use the distribution of parameter {key!r} (batch shape {tuple(batch)}, event "
        f"shape {tuple(event)}) as a prior over a vector: pass prior= a distribution over the "
        "flat parameter vector"
    )
