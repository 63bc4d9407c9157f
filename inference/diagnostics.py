"""Warnings with advice about a posterior: MCMC mixing and convergence, importance weights.

:func:`diagnose` returns human-readable sentences, each saying what looks
wrong and what to do about it (the command-line options are named); an empty
list when nothing does. For MCMC (:func:`diagnose_chains`) it checks the
acceptance rate, the rank-normalised split R-hat and the bulk effective sample
size of every scalar latent, with the thresholds of Vehtari et al. (2021):
R-hat below 1.01, bulk ESS above 100 per chain (computed by ArviZ). For
importance sampling (:func:`diagnose_weights`) it checks Kish's effective
sample size, in absolute terms and as a fraction of the traces.

Example:
    >>> post = rmh(model, {"obs0": 8.0, "obs1": 9.0}, 500)
    >>> for warning in diagnose(post):
    ...     print("warning:", warning)

References:
    Vehtari, Gelman, Simpson, Carpenter, Bürkner (2021). Rank-Normalization,
    Folding, and Localization: An Improved R-hat for Assessing Convergence of
    MCMC. Bayesian Analysis 16(2).
    Gelman, Roberts, Gilks (1996). Efficient Metropolis Jumping Rules.
    Bayesian Statistics 5 (acceptance rates of well-tuned random walks).
    Kish (1965). Survey Sampling (the effective sample size of weights).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ppx.inference.empirical import Empirical

__all__ = [
    "ACCEPTANCE_RANGE",
    "ESS_PER_CHAIN",
    "IS_ESS_FRACTION",
    "IS_ESS_MIN",
    "RHAT_MAX",
    "diagnose",
    "diagnose_chains",
    "diagnose_weights",
]

#: Largest acceptable R-hat (Vehtari et al. 2021).
RHAT_MAX = 1.01
#: Smallest acceptable bulk ESS per chain (Vehtari et al. 2021).
ESS_PER_CHAIN = 100
#: Acceptance rates outside this range mean badly sized random-walk steps.
ACCEPTANCE_RANGE = (0.1, 0.9)
#: Importance sampling: smallest acceptable ESS, and ESS as a fraction of the traces.
IS_ESS_MIN, IS_ESS_FRACTION = 100, 0.01

_SHOWN = 3  # latents named in a warning


def diagnose(posterior: Empirical) -> list[str]:
    """Warnings with advice about ``posterior``: MCMC chains or importance weights.

    MCMC checks apply to RMH posteriors (metadata ``engine`` ``"rmh"``) and to
    any with several chains; weight checks to weighted posteriors. Equally
    weighted single-chain posteriors of other engines (prior samples) get none.

    Returns:
        One sentence per problem; empty when nothing looks wrong.
    """
    if posterior.metadata.get("engine") == "rmh" or posterior.num_chains > 1:
        return diagnose_chains(posterior)
    if posterior.is_weighted or posterior.metadata.get("engine") == "importance_sampling":
        return diagnose_weights(posterior)
    return []


def diagnose_chains(posterior: Empirical, names: Sequence[str] | None = None) -> list[str]:
    """Warnings about MCMC chains: acceptance, one chain, stuck chains, R-hat, bulk ESS.

    Keys whose value never changes in any chain (constants) are left out.

    Arguments:
        posterior: equally weighted records with chain ids (and, from
            :func:`~ppx.inference.mcmc.rmh`, ``acceptance`` and ``proposal`` metadata).
        names: latents to check (default: those with scalar values).
    """
    warnings = _acceptance_warnings(posterior.metadata)
    chains = posterior.num_chains
    if chains == 1:
        warnings.append(
            "only one chain, so R-hat (do independent chains agree?) cannot be computed: "
            "run 4 chains (--chains 4) to check convergence"
        )
    try:
        with np.errstate(invalid="ignore", divide="ignore"):  # constant values: NaN R-hat
            table = posterior.summary(names, kind="diagnostics")
    except ValueError:  # no scalar latent: nothing to measure
        return warnings
    varying, stuck = _variation(posterior, [str(key) for key in table.index])
    ess = {key: float(table.loc[key, "ess_bulk"]) for key in varying}
    rhat = {key: float(table.loc[key, "r_hat"]) for key in varying}
    draws = len(posterior)
    if stuck:
        warnings.append(
            f"{_names(stuck)} never changed value in some chain but did in others: that "
            "chain is stuck; use a longer --burn-in, more chains, or --proposal prior"
        )
    if chains > 1:
        high = {key: value for key, value in rhat.items() if value > RHAT_MAX}
        if high:
            warnings.append(
                f"R-hat above {RHAT_MAX} for {len(high)} of {len(rhat)} latents "
                f"({_worst(high, reverse=True, digits=3)}): the chains disagree, they have "
                "not converged; run longer chains (-n) with a longer --burn-in"
            )
    floor = ESS_PER_CHAIN * chains
    low = {key: value for key, value in ess.items() if value < floor}
    if low:
        warnings.append(
            f"bulk effective sample size below {floor} ({ESS_PER_CHAIN} per chain) for "
            f"{len(low)} of {len(ess)} latents ({_worst(low, digits=0)}, of {draws} draws): "
            "successive samples are strongly correlated and the estimates uncertain "
            "(standard error = sd / sqrt(ESS)); run longer chains (-n) or more chains (--chains)"
        )
    return warnings


def diagnose_weights(posterior: Empirical) -> list[str]:
    """Warnings about importance weights: Kish's ESS too low, absolutely or relatively."""
    ess, traces = posterior.ess, len(posterior)
    fraction = ess / traces
    warnings = []
    if ess < IS_ESS_MIN:
        warnings.append(
            f"effective sample size {ess:.1f} of {traces} traces: the estimates rest on a "
            f"handful of traces; run more traces (-n), or until the ESS reaches a target "
            f"(--ess {10 * IS_ESS_MIN})"
        )
    if fraction < IS_ESS_FRACTION:
        warnings.append(
            f"only {100 * fraction:.2g}% of the traces carry the weight (ESS {ess:.0f} of "
            f"{traces}): the proposal is far from the posterior, and the ESS itself may be "
            "optimistic; use a better proposal (a trained network, --engine ic) or MCMC "
            "(--engine rmh)"
        )
    return warnings


def _acceptance_warnings(metadata: Mapping[str, object]) -> list[str]:
    rates = metadata.get("acceptance")
    if not isinstance(rates, list) or not rates:
        return []
    low, high = ACCEPTANCE_RANGE
    shown = ", ".join(f"{rate:.3f}" for rate in rates)
    if min(rates) < low:
        return [f"acceptance rate below {low} (per chain: {shown}): {_low_advice(metadata)}"]
    if metadata.get("proposal") == "random_walk" and _has_random_walk_sites(metadata):
        if max(rates) > high:
            adapt = "let them adapt longer (a longer --burn-in)"
            if metadata.get("adapt") is False:
                adapt = "take a larger scale, or let it adapt"
            return [
                f"acceptance rate above {high} (per chain: {shown}): the random-walk steps are "
                f"too small to explore the posterior quickly; {adapt}"
            ]
    return []


def _low_advice(metadata: Mapping[str, object]) -> str:
    if metadata.get("proposal") == "prior":
        return (
            "prior proposals rarely land where the posterior is (it is much narrower than "
            "the prior): use random-walk proposals (--proposal random_walk)"
        )
    return (
        "the chain barely moves; let the step sizes adapt longer (a longer --burn-in), or, "
        "if most draws are discrete, expect slow mixing"
    )


def _variation(posterior: Empirical, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The keys that vary, and those of them constant within some chain (a stuck chain)."""
    varying, stuck = [], []
    for name in names:
        values = posterior.values(name)
        constant = [np.ptp(values[posterior.chain == c]) == 0 for c in np.unique(posterior.chain)]
        if np.ptp(values) > 0:
            varying.append(name)
            if any(constant):
                stuck.append(name)
    return varying, stuck


def _has_random_walk_sites(metadata: Mapping[str, object]) -> bool:
    """Some address moved by random walk (assumed when no adapted scales were recorded)."""
    scales = metadata.get("scales")
    return not isinstance(scales, list) or any(scales)


def _worst(values: Mapping[str, float], *, reverse: bool = False, digits: int = 2) -> str:
    ordered = sorted(values.items(), key=lambda item: item[1], reverse=reverse)
    shown = ", ".join(f"{key} {value:.{digits}f}" for key, value in ordered[:_SHOWN])
    return f"worst: {shown}" + (", ..." if len(ordered) > _SHOWN else "")


def _names(keys: Sequence[str]) -> str:
    return ", ".join(keys[:_SHOWN]) + (
        f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    )
