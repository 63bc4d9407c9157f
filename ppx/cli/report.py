"""What the ``ppx`` commands print and draw: :mod:`~ppx.cli.tables` and :mod:`~ppx.cli.plots`.

The quantities both show, with the units and category names a simulator states,
are :mod:`ppx.cli.quantities`'.
"""

from __future__ import annotations

from ppx.cli.plots import Truth, parse_truth, plot, plot_losses
from ppx.cli.quantities import UnknownQuantity, describe, latent_names
from ppx.cli.tables import (
    observed_text,
    print_chains,
    print_prior,
    print_weighted,
    prior_title,
    rate_text,
)

__all__ = [
    "Truth",
    "UnknownQuantity",
    "describe",
    "latent_names",
    "observed_text",
    "parse_truth",
    "plot",
    "plot_losses",
    "print_chains",
    "print_prior",
    "print_weighted",
    "prior_title",
    "rate_text",
]
