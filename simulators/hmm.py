"""Hidden Markov model with discrete states and Gaussian emissions, solved exactly.

After pyprob's ``HiddenMarkovModel`` test: ``K = 3`` states, ``T`` time steps
(default 16)::

    state0 ~ Categorical(initial_probs)                      address "state0"
    state_t ~ Categorical(transition_matrix[state_{t-1}])    address "state{t}", t >= 1
    obs_t  ~ Normal(emission_means[state_t], emission_std)   address "obs{t}" (observed)
    return torch.stack([state0, ..., state_{T-1}])           (long tensor of shape (T,))

Defaults (pyprob's): ``initial_probs = [1/3, 1/3, 1/3]``, transition rows
``[0.1, 0.5, 0.4]``, ``[0.2, 0.2, 0.6]``, ``[0.15, 0.15, 0.7]``, emission means
``[-1, 1, 0]``, emission std ``1``, and the observations :data:`DEFAULT_OBSERVATIONS`.
pyprob additionally draws an unobserved state before the first observation; that model
is this one with ``initial_probs = uniform @ transition_matrix``.

Exact answer: the posterior marginals ``p(state_t = k | obs_0..obs_{T-1})`` by the
forward-backward algorithm in log space (:func:`exact_posterior_marginals`), and the
evidence by the forward recursion (:func:`log_evidence`).

Serve it with ``python -m ppx.simulators.hmm --address ADDR [--length T]``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.special import logsumexp
from torch.distributions import Categorical, Normal

import ppx

__all__ = [
    "DEFAULT_OBSERVATIONS",
    "EMISSION_MEANS",
    "EMISSION_STD",
    "INITIAL_PROBS",
    "TRANSITION_MATRIX",
    "exact_posterior_marginals",
    "log_evidence",
    "make_model",
    "model",
    "quantities",
]

INITIAL_PROBS: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)
TRANSITION_MATRIX: tuple[tuple[float, ...], ...] = (
    (0.1, 0.5, 0.4),
    (0.2, 0.2, 0.6),
    (0.15, 0.15, 0.7),
)
EMISSION_MEANS: tuple[float, ...] = (-1.0, 1.0, 0.0)
EMISSION_STD: float = 1.0

#: pyprob's reference observations ``obs0 .. obs15``.
DEFAULT_OBSERVATIONS: tuple[float, ...] = (
    0.9, 0.8, 0.7, 0.0, -0.025, -5.0, -2.0, -0.1,
    0.0, 0.13, 0.45, 6.0, 0.2, 0.3, -1.0, -1.0,
)  # fmt: skip

_ArrayLike = Sequence[float] | Sequence[Sequence[float]] | np.ndarray


def _parameters(
    initial_probs: _ArrayLike | None,
    transition_matrix: _ArrayLike | None,
    emission_means: _ArrayLike | None,
    emission_std: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Fill in defaults, convert to float64 arrays and validate."""
    init = np.asarray(INITIAL_PROBS if initial_probs is None else initial_probs, np.float64)
    trans = np.asarray(
        TRANSITION_MATRIX if transition_matrix is None else transition_matrix, np.float64
    )
    means = np.asarray(EMISSION_MEANS if emission_means is None else emission_means, np.float64)
    k = init.shape[0] if init.ndim == 1 else -1
    if init.ndim != 1 or trans.shape != (k, k) or means.shape != (k,):
        raise ValueError(
            "expected initial_probs (K,), transition_matrix (K, K), emission_means (K,); got "
            f"{init.shape}, {trans.shape}, {means.shape}"
        )
    if (init < 0).any() or (trans < 0).any():
        raise ValueError("probabilities must be non-negative")
    if not np.allclose(init.sum(), 1.0) or not np.allclose(trans.sum(axis=1), 1.0):
        raise ValueError("initial_probs and every row of transition_matrix must sum to 1")
    if not emission_std > 0:
        raise ValueError("emission_std must be positive")
    return init, trans, means, float(emission_std)


def make_model(
    initial_probs: _ArrayLike | None = None,
    transition_matrix: _ArrayLike | None = None,
    emission_means: _ArrayLike | None = None,
    emission_std: float = EMISSION_STD,
    length: int = len(DEFAULT_OBSERVATIONS),
) -> Callable[[], torch.Tensor]:
    """Build the simulator.

    Arguments:
        initial_probs: Distribution of ``state0``, shape ``(K,)``; default uniform over 3.
        transition_matrix: Row-stochastic ``(K, K)`` matrix, row = previous state.
        emission_means: Mean of the Gaussian emission of each state, shape ``(K,)``.
        emission_std: Standard deviation shared by all emissions.
        length: Number of time steps ``T`` (states and observe statements).

    Returns:
        A no-argument callable that runs the model through ``ppx.sample``/``ppx.observe``
        and returns the states as a long tensor of shape ``(T,)``.

    Raises:
        ValueError: If the parameters have inconsistent shapes or are not valid
            probabilities, or ``length < 1``.
    """
    init, trans, means, std = _parameters(
        initial_probs, transition_matrix, emission_means, emission_std
    )
    if length < 1:
        raise ValueError("length must be >= 1")
    length = int(length)
    init_t = torch.tensor(init, dtype=torch.get_default_dtype())
    trans_t = torch.tensor(trans, dtype=torch.get_default_dtype())
    means_t = torch.tensor(means, dtype=torch.get_default_dtype())

    def hidden_markov_model() -> torch.Tensor:
        states = []
        probs = init_t
        for t in range(length):
            state = ppx.sample(Categorical(probs=probs), name=f"state{t}")
            index = int(state)
            ppx.observe(Normal(means_t[index], std), name=f"obs{t}")
            states.append(torch.as_tensor(state, dtype=torch.long).reshape(()))
            probs = trans_t[index]
        return torch.stack(states)

    return hidden_markov_model


#: The default simulator: pyprob's parameters, ``T = 16``.
model: Callable[[], torch.Tensor] = make_model()


def _log_emissions(obs: np.ndarray, means: np.ndarray, std: float) -> np.ndarray:
    z = (obs[:, None] - means[None, :]) / std
    return -0.5 * z**2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def _forward_backward(
    observations: Sequence[float] | np.ndarray,
    initial_probs: _ArrayLike | None,
    transition_matrix: _ArrayLike | None,
    emission_means: _ArrayLike | None,
    emission_std: float,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Return ``(log_alpha, log_beta, log_evidence)``, each alpha/beta of shape (T, K)."""
    init, trans, means, std = _parameters(
        initial_probs, transition_matrix, emission_means, emission_std
    )
    obs = np.asarray(observations, dtype=np.float64).reshape(-1)
    if obs.size == 0:
        raise ValueError("need at least one observation")
    n, k = obs.size, init.size
    with np.errstate(divide="ignore"):
        log_init = np.log(init)
        log_trans = np.log(trans)
    log_emis = _log_emissions(obs, means, std)
    log_alpha = np.empty((n, k))
    log_beta = np.zeros((n, k))
    log_alpha[0] = log_init + log_emis[0]
    for t in range(1, n):
        log_alpha[t] = logsumexp(log_alpha[t - 1][:, None] + log_trans, axis=0) + log_emis[t]
    for t in range(n - 2, -1, -1):
        log_beta[t] = logsumexp(log_trans + (log_emis[t + 1] + log_beta[t + 1])[None, :], axis=1)
    return log_alpha, log_beta, float(np.asarray(logsumexp(log_alpha[-1])))


def exact_posterior_marginals(
    observations: Sequence[float] | np.ndarray = DEFAULT_OBSERVATIONS,
    initial_probs: _ArrayLike | None = None,
    transition_matrix: _ArrayLike | None = None,
    emission_means: _ArrayLike | None = None,
    emission_std: float = EMISSION_STD,
) -> np.ndarray:
    """Return the exact posterior marginals of the states by forward-backward.

    Arguments:
        observations: The observed values ``obs0 .. obs{T-1}``.
        initial_probs: Distribution of ``state0``; default uniform over 3 states.
        transition_matrix: Row-stochastic ``(K, K)`` matrix; default pyprob's.
        emission_means: Emission mean per state; default ``[-1, 1, 0]``.
        emission_std: Emission standard deviation.

    Returns:
        Array of shape ``(T, K)`` whose row ``t`` is ``p(state_t = . | observations)``.
    """
    log_alpha, log_beta, log_z = _forward_backward(
        observations, initial_probs, transition_matrix, emission_means, emission_std
    )
    marginals = np.exp(log_alpha + log_beta - log_z)
    return marginals / marginals.sum(axis=1, keepdims=True)


def log_evidence(
    observations: Sequence[float] | np.ndarray,
    initial_probs: _ArrayLike | None = None,
    transition_matrix: _ArrayLike | None = None,
    emission_means: _ArrayLike | None = None,
    emission_std: float = EMISSION_STD,
) -> float:
    """Return the exact log marginal likelihood ``log p(obs0 .. obs{T-1})``.

    Arguments:
        observations: The observed values.
        initial_probs: Distribution of ``state0``.
        transition_matrix: Row-stochastic ``(K, K)`` matrix.
        emission_means: Emission mean per state.
        emission_std: Emission standard deviation.

    Returns:
        The natural log of the evidence, by the forward recursion.
    """
    return _forward_backward(
        observations, initial_probs, transition_matrix, emission_means, emission_std
    )[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``python -m ppx.simulators.hmm``.

    They are named as :func:`make_model`'s parameters, which the registry builds with.
    """
    parser.add_argument(
        "--length", type=int, default=len(DEFAULT_OBSERVATIONS), help="time steps T (default 16)"
    )
    parser.add_argument(
        "--emission-std", type=float, default=EMISSION_STD, help="default: %(default)s"
    )


def quantities(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """The values of the states, for ``ppx`` tables and plots: all K of each, by index."""
    names = [str(k) for k in range(len(INITIAL_PROBS))]
    return {f"state{t}": {"categories": names} for t in range(args.length)}


if __name__ == "__main__":
    from ._main import main

    main("hmm")
