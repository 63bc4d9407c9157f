"""Simulation-based calibration of inference-compilation posteriors.

A proposal network can be confidently wrong; importance weights correct it
only where the proposal covers the posterior. SBC (Talts et al. 2018) checks
the whole pipeline: for parameters and data drawn from the prior, the rank of
the true parameter among posterior draws is uniform when the posteriors are
right. Here the rank is the posterior's weighted probability below the truth,
which is Uniform(0, 1) for a calibrated posterior of a continuous latent.

References:
    Talts, Betancourt, Simpson, Vehtari & Gelman, "Validating Bayesian
    Inference Algorithms with Simulation-Based Calibration", arXiv:1804.06788.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ppx.engine.model import Model
from ppx.inference.ic.dataset import record_from_trace
from ppx.inference.ic.network import ProposalNetwork
from ppx.inference.importance_sampling import importance_sampling

__all__ = ["CalibrationResult", "calibrate"]


@dataclass(frozen=True)
class CalibrationResult:
    """The SBC ranks of each latent and their uniformity test.

    Attributes:
        ranks: latent name -> posterior probability below the true value, per replicate.
        p_values: latent name -> Kolmogorov-Smirnov p-value of the ranks against Uniform(0, 1).
        ess: the ESS of each replicate's posterior.
    """

    ranks: dict[str, np.ndarray]
    p_values: dict[str, float]
    ess: np.ndarray

    def passed(self, level: float = 0.01) -> bool:
        """Whether no latent's ranks reject uniformity at ``level``."""
        return all(p >= level for p in self.p_values.values())


def calibrate(
    model: Model,
    network: ProposalNetwork,
    latents: Sequence[str],
    observe_names: Sequence[str],
    *,
    replicates: int = 100,
    num_traces: int = 200,
) -> CalibrationResult:
    """SBC of importance sampling with ``network`` on ``model``'s scalar ``latents``.

    Arguments:
        model: the simulator.
        network: the trained proposal network.
        latents: names of scalar latents to rank.
        observe_names: the observations to condition on.
        replicates: prior draws (true latents and data) to infer back.
        num_traces: importance-sampling traces per posterior.
    """
    ranks: dict[str, list[float]] = {name: [] for name in latents}
    ess = []
    for _ in range(replicates):
        truth = model.run()
        data = record_from_trace(truth, observe_names).observations
        posterior = importance_sampling(
            model, dict(data), num_traces, proposal=network, progress=False
        )
        ess.append(posterior.ess)
        for name in latents:
            below = posterior.values(name) < float(truth[name])
            ranks[name].append(float(np.sum(posterior.weights * below)))
    arrays = {name: np.asarray(values) for name, values in ranks.items()}
    p_values = {
        name: float(stats.kstest(values, "uniform").pvalue) for name, values in arrays.items()
    }
    return CalibrationResult(arrays, p_values, np.asarray(ess))
