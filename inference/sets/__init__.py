"""Hierarchical set-based SBI: a global ``theta`` from ensembles of events with their own latents.

:class:`SetNPE` (deep set or set transformer + a zuko flow), :class:`PAIRS`
(trained on pairs, head fine-tuned on pre-aggregated large sets) and
:class:`SummedEstimator` (a per-event likelihood or ratio summed over the set),
checked against the conjugate :class:`HierarchicalGaussian`. The ensembles come
from PPX programs by :func:`simulate_ensembles` (one run per set, or a per-event
program with the globals held fixed), stored ragged in HDF5 (:func:`load_sets`).
Checks: coverage, SBC and posterior width per N (:func:`diagnose_per_n`),
likelihood-ratio intervals with Neyman coverage by toys (:func:`toy_coverage`),
and local posteriors ``p(z_i | x_i, theta)`` (:class:`LocalPosterior`).
"""

from __future__ import annotations

from ppx.inference.sets.diagnostics import coverage_per_n, diagnose_per_n, sbc_per_n, width_vs_n
from ppx.inference.sets.ensembles import simulate_ensembles
from ppx.inference.sets.estimators import SetNPE
from ppx.inference.sets.frequentist import likelihood_scan, neyman_belt, toy_coverage
from ppx.inference.sets.local import LocalPosterior
from ppx.inference.sets.networks import DeepSet, SetTransformer, pad_sets
from ppx.inference.sets.pairs import PAIRS
from ppx.inference.sets.ratio import SummedEstimator
from ppx.inference.sets.set_store import SetSimulations, load_sets
from ppx.inference.sets.toy import HierarchicalGaussian

__all__ = [
    "PAIRS",
    "DeepSet",
    "HierarchicalGaussian",
    "LocalPosterior",
    "SetNPE",
    "SetSimulations",
    "SetTransformer",
    "SummedEstimator",
    "coverage_per_n",
    "diagnose_per_n",
    "likelihood_scan",
    "load_sets",
    "neyman_belt",
    "pad_sets",
    "sbc_per_n",
    "simulate_ensembles",
    "toy_coverage",
    "width_vs_n",
]
