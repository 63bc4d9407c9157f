"""Gradients of expectations over Gillespie simulations with respect to reaction rates.

Fitting the rates of a stochastic kinetic model by gradient descent needs
``d E[f(trajectory)] / d c`` through a program full of discrete choices. Three
estimators, one front (:func:`gradient`), each with its Monte Carlo error:

* ``"score"``: the score function (likelihood ratio), ``E[(f - b) d log p / d c]``,
  in closed form for mass action, with a leave-one-out baseline ``b``; unbiased;
  its variance grows with the number of events.
* ``"gumbel"``: Gumbel-softmax straight-through on the direct method, waiting
  times reparameterised; biased (no gradient from events crossing a fixed
  observation time, and the softmax relaxation), often the lowest variance.
* ``"alternative"``: alternative paths (StochasticAD's stochastic derivatives)
  on the uniformized process, pruned to one alternative per rate; unbiased.

:func:`trace_score` gives the score of any recorded PPX Gillespie trace (a
served simulator included), so every PPX reaction network has gradients;
:func:`finite_difference` is the reference, with common random numbers.

Example:
    >>> net = ReactionNetwork.birth_death(k=4.0, gamma=1.0)
    >>> f = observable(net, "at", "X", 0)          # X at the first observation time
    >>> est = gradient(net, f, estimator="alternative", observation_times=(1.0,))
    >>> est["k"]                                   # (0.63..., 0.03...): d E[X_1] / dk

References:
    Burger, Kofler, Heinrich & Gerland (2026), arXiv:2604.02121.
    Arya, Schauer, Schäfer & Rackauckas (2022), Automatic Differentiation of
    Programs with Discrete Randomness, NeurIPS (StochasticAD).
    Jang, Gu & Poole (2017), Categorical Reparameterization with Gumbel-Softmax, ICLR.
    Glynn (1990), Likelihood ratio gradient estimation for stochastic systems.
"""

from __future__ import annotations

from .estimate import ESTIMATORS, Estimator, GradientEstimate, finite_difference, gradient
from .fit import FitResult, fit_rates
from .kinetics import Kinetics
from .observables import Observable, Summaries, Window, observable
from .trace_score import score_gradient, trace_log_prob, trace_score

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "FitResult",
    "GradientEstimate",
    "Kinetics",
    "Observable",
    "Summaries",
    "Window",
    "finite_difference",
    "fit_rates",
    "gradient",
    "observable",
    "score_gradient",
    "trace_log_prob",
    "trace_score",
]
