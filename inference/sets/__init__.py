"""Hierarchical set-based SBI: a global ``theta`` from ensembles of events with their own latents.

:class:`SetNPE` (deep set or set transformer + a zuko flow), :class:`PAIRS`
(trained on pairs, head fine-tuned on pre-aggregated large sets) and
:class:`SummedEstimator` (a per-event likelihood or ratio summed over the set),
checked against the conjugate :class:`HierarchicalGaussian`. The ensembles come
from PPX programs by :func:`simulate_ensembles` (one run per set, or a per-event
program with the globals held fixed), stored ragged in HDF5 (:func:`load_sets`).
"""

from __future__ import annotations

from ppx.inference.sets.ensembles import simulate_ensembles
from ppx.inference.sets.estimators import SetNPE
from ppx.inference.sets.networks import DeepSet, SetTransformer, pad_sets
from ppx.inference.sets.pairs import PAIRS
from ppx.inference.sets.ratio import SummedEstimator
from ppx.inference.sets.set_store import SetSimulations, load_sets
from ppx.inference.sets.toy import HierarchicalGaussian

__all__ = [
    "PAIRS",
    "DeepSet",
    "HierarchicalGaussian",
    "SetNPE",
    "SetSimulations",
    "SetTransformer",
    "SummedEstimator",
    "load_sets",
    "pad_sets",
    "simulate_ensembles",
]
