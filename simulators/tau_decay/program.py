"""The PPX program: a tau- with a uniform momentum prior decays, seen by the calorimeter."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

import ppx

from .channels import NEUTRINOS, branching_fractions, check_channels
from .decay import decay
from .kinematics import DTYPE, uniform
from .polarization import check_polarization_setting

if TYPE_CHECKING:
    from ..calorimeter import IncomingParticle

__all__ = ["DEFAULT_MOMENTUM_PRIOR", "make_model", "model", "visible_fraction", "visible_particles"]

#: Uniform prior boxes (GeV) of the tau's lab momentum, as in Etalumis.
DEFAULT_MOMENTUM_PRIOR: dict[str, tuple[float, float]] = {
    "px": (-1.0, 1.0),
    "py": (-1.0, 1.0),
    "pz": (40.0, 50.0),
}


def _check_prior(prior: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """The momentum prior boxes as floats, or a ``ValueError`` naming the bad one."""
    if set(prior) != set(DEFAULT_MOMENTUM_PRIOR):
        raise ValueError(f"momentum_prior needs the keys px, py, pz, got {sorted(prior)}")
    out = {}
    for key in DEFAULT_MOMENTUM_PRIOR:
        low, high = (float(v) for v in prior[key])
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise ValueError(
                f"momentum_prior[{key!r}] = {prior[key]!r}: need finite low < high "
                "(a positive scale)"
            )
        out[key] = (low, high)
    return out


def visible_particles(final_state: torch.Tensor) -> list[IncomingParticle]:
    """The calorimeter's ``IncomingParticle`` list for the non-neutrino rows of ``final_state``.

    Arguments:
        final_state: ``(n, 5)`` rows ``[pdg, E, px, py, pz]`` (the ``final_state`` tag).
    """
    from ..calorimeter import IncomingParticle

    particles = []
    for row in final_state:
        if abs(int(row[0])) not in NEUTRINOS:
            energy, px, py, pz = (float(x) for x in row[1:])
            particles.append(IncomingParticle(int(row[0]), (energy, px, py, pz)))
    return particles


def visible_fraction(final_state: torch.Tensor) -> torch.Tensor:
    """``E_visible / E_tau``: the non-neutrino rows' energy over the total, a scalar tensor.

    The observable of tau polarimetry (for tau -> pi nu, ``dN/dx = 1 + P (2x - 1)``);
    the ``visible_fraction`` tag of every run, so that ensembles of decays can be read
    from a served simulator.
    """
    visible = torch.tensor([abs(int(pdg)) not in NEUTRINOS for pdg in final_state[:, 0]])
    return final_state[visible, 1].sum() / final_state[:, 1].sum()


def make_model(
    momentum_prior: Mapping[str, tuple[float, float]] | None = None,
    channels: Sequence[str] | None = None,
    calorimeter: bool = True,
    calorimeter_config: Mapping[str, object] | None = None,
    polarization: float | tuple[float, float] = 0.0,
) -> Callable[[], torch.Tensor]:
    """Build the tau-decay simulator.

    Arguments:
        momentum_prior: ``{"px": (low, high), "py": ..., "pz": ...}`` Uniform boxes in
            GeV (default :data:`DEFAULT_MOMENTUM_PRIOR`).
        channels: allowed channels (default all of :data:`CHANNELS`), fractions
            renormalised over them.
        calorimeter: observe the visible products in the toy calorimeter (``calo``).
        calorimeter_config: overrides passed to ``Calorimeter(**...)``.
        polarization: the tau's longitudinal polarisation ``P``: a fixed value in
            ``[-1, 1]`` (default 0, unpolarised), or a Uniform prior box ``(low, high)``
            inside it, drawn at address ``polarization`` after the momentum.

    Returns:
        A no-argument callable returning the final state ``(n, 5)`` tensor
        ``[pdg, E, px, py, pz]`` (also tagged ``final_state``).

    Raises:
        ValueError: a momentum box with ``high <= low``, an unknown channel, or a
            polarisation (or its box) outside ``[-1, 1]``.
    """
    prior = _check_prior(DEFAULT_MOMENTUM_PRIOR if momentum_prior is None else momentum_prior)
    spin = check_polarization_setting(polarization)
    names = check_channels(channels)
    branching_fractions()  # load (or warn about) the fractions now, not in the first run
    overrides = dict(calorimeter_config or {})
    detector = None
    if calorimeter:
        from ..calorimeter import Calorimeter

        detector = Calorimeter(None, **overrides)

    def tau_decay() -> torch.Tensor:
        p = torch.stack([torch.tensor(uniform(*prior[k], name=k), dtype=DTYPE) for k in prior])
        pol = uniform(*spin, name="polarization") if isinstance(spin, tuple) else spin
        products = decay(p, names, pol)
        final = torch.stack(
            [torch.cat([torch.tensor([float(pdg)], dtype=DTYPE), p4]) for pdg, p4 in products]
        )
        ppx.tag(final, name="final_state")
        ppx.tag(visible_fraction(final), name="visible_fraction")
        if detector is not None:
            detector.observe(visible_particles(final), name="calo")
        return final

    return tau_decay


#: The default simulator: tau decay seen through the default calorimeter.
model: Callable[[], torch.Tensor] = make_model()
