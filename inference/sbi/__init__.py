"""Neural simulation-based inference on PPX programs: simulate, train, query, check.

The engine runs the program in bulk (:func:`simulate`, to a resumable HDF5
store, across Dask workers), sbi trains a neural posterior, likelihood or
ratio estimator (:func:`train`, :func:`sequential`), and the resulting
:class:`AmortizedPosterior` answers queries for any observation, saves and
loads. Importing this package does not import sbi: the modules that train,
sample or check import it when called (``pip install 'ppx-engine[sbi]'``).

Example:
    >>> from ppx.inference import sbi
    >>> sims = sbi.simulate(model, ["theta"], ["x"], 10_000, store="sims.h5", workers=4)
    >>> posterior = sbi.train("sims.h5", method="NPE")
    >>> posterior.sample(x_obs, 10_000); posterior.save("posterior.pt")
"""

from __future__ import annotations

from ppx.inference.sbi.diagnostics import (
    Coverage,
    PredictiveCheck,
    corner,
    expected_coverage,
    predictive_check,
    sbc,
    tarp,
)
from ppx.inference.sbi.layout import Block, Layout
from ppx.inference.sbi.posterior import AmortizedPosterior, load_posterior
from ppx.inference.sbi.simulate import simulate
from ppx.inference.sbi.store import Simulations, load_simulations
from ppx.inference.sbi.train import sequential, train

__all__ = [
    "AmortizedPosterior",
    "Block",
    "Coverage",
    "Layout",
    "PredictiveCheck",
    "Simulations",
    "corner",
    "expected_coverage",
    "load_posterior",
    "load_simulations",
    "predictive_check",
    "sbc",
    "sequential",
    "simulate",
    "tarp",
    "train",
]
