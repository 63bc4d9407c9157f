"""The toy sampling calorimeter: response, resolution, depth scaling, particle kinds, addresses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ppx
from ppx.simulators.calorimeter import (
    LEAD,
    Calorimeter,
    CalorimeterConfig,
    IncomingParticle,
    make_model,
)

ENERGIES = np.array([2.0, 5.0, 10.0, 20.0, 50.0, 100.0])
N_PER_ENERGY = 300


def _head_on(pdg: int, energy: float) -> IncomingParticle:
    return IncomingParticle(pdg, (energy, 0.0, 0.0, energy))


def _totals(calo: Calorimeter, pdg: int, energy: float, n: int) -> np.ndarray:
    return np.array([float(calo.deposit([_head_on(pdg, energy)]).sum()) for _ in range(n)])


@pytest.fixture(scope="module")
def photon_totals() -> dict[float, np.ndarray]:
    torch.manual_seed(1)
    calo = Calorimeter()
    return {e: _totals(calo, 22, e, N_PER_ENERGY) for e in ENERGIES}


def test_mean_response_is_linear(photon_totals):
    means = np.array([photon_totals[e].mean() for e in ENERGIES])
    errors = np.array([photon_totals[e].std(ddof=1) for e in ENERGIES]) / math.sqrt(N_PER_ENERGY)
    design = np.stack([ENERGIES, np.ones_like(ENERGIES)], axis=1) / errors[:, None]
    coef, *_ = np.linalg.lstsq(design, means / errors, rcond=None)
    cov = np.linalg.inv(design.T @ design)
    slope, intercept = coef
    assert slope == pytest.approx(1.0, abs=4 * math.sqrt(cov[0, 0]) + 1e-3)
    assert abs(intercept) < 4 * math.sqrt(cov[1, 1])
    chi2 = float((((means - (slope * ENERGIES + intercept)) / errors) ** 2).sum())
    assert chi2 < 20.0  # 4 degrees of freedom


def test_fitted_resolution_matches_config(photon_totals):
    n = N_PER_ENERGY
    rel_var = np.array([photon_totals[e].var(ddof=1) for e in ENERGIES]) / ENERGIES**2
    sigma = rel_var * math.sqrt(2 / (n - 1))  # standard error of a sample variance
    design = np.stack([1 / ENERGIES, np.ones_like(ENERGIES)], axis=1) / sigma[:, None]
    (a2, b2), *_ = np.linalg.lstsq(design, rel_var / sigma, rcond=None)
    cov = np.linalg.inv(design.T @ design)
    assert a2 == pytest.approx(0.10**2, abs=4 * math.sqrt(cov[0, 0]))
    assert b2 == pytest.approx(0.01**2, abs=4 * math.sqrt(cov[1, 1]))


def test_shower_depth_grows_like_log_energy():
    torch.manual_seed(2)
    calo = Calorimeter(shape=(9, 9, 120), cell_size=(3.0, 3.0, 0.25))
    z = calo._z_centres.numpy()
    energies = np.array([1.0, 3.0, 10.0, 30.0, 100.0])
    depths = []
    for e in energies:
        runs = [calo.deposit([_head_on(22, e)]).sum((0, 1)).numpy() for _ in range(60)]
        depths.append(np.mean([(d * z).sum() / d.sum() for d in runs]))
    slope, intercept = np.polyfit(np.log(energies), depths, 1)
    # Mean depth X0 (9/7 + 2 + 0.5 + ln(E / Ec)): slope X0 per unit of ln E.
    assert slope == pytest.approx(LEAD.radiation_length, rel=0.1)
    expected = LEAD.radiation_length * (9 / 7 + 2.5 - math.log(LEAD.critical_energy))
    assert intercept == pytest.approx(expected, rel=0.1)


def test_hadrons_respond_less_and_resolve_worse():
    for energy in (10.0, 50.0):
        traces = ppx.LocalModel(lambda e=energy: Calorimeter().deposit([_head_on(211, e)])).prior(
            200
        )
        fraction = np.array([float(t["particle0/visible_fraction"]) for t in traces])
        assert 0.6 < fraction.mean() < 0.95
        resolution = fraction.std(ddof=1) / fraction.mean()
        expected = math.hypot(0.5 / math.sqrt(energy), 0.03)
        assert resolution == pytest.approx(expected, rel=0.3)
        totals = np.array([float(t.result.sum()) for t in traces])
        assert totals.mean() < fraction.mean() * energy  # leakage only removes energy


def test_muon_is_a_mip_track_and_neutrino_is_invisible():
    calo = Calorimeter()
    per_slice = calo.deposit([_head_on(13, 20.0)]).sum((0, 1))
    assert torch.allclose(per_slice, per_slice.mean().expand_as(per_slice), rtol=1e-4)
    dz = calo.config.cell_size[2]
    assert float(per_slice.mean()) == pytest.approx(LEAD.mip_dedx * dz, rel=0.5)
    trace = ppx.LocalModel(lambda: calo.deposit([_head_on(16, 20.0)])).run()
    assert float(trace.result.abs().sum()) == 0.0
    assert len(trace.samples) == 0


@pytest.mark.parametrize("pdg", [22, 11, -11])
def test_contained_deposit_equals_visible_energy(pdg):
    calo = Calorimeter()
    for _ in range(5):
        trace = ppx.LocalModel(lambda: calo.deposit([_head_on(pdg, 20.0)])).run()
        visible = float(trace["particle0/visible_energy"])
        assert float(trace.result.sum()) == pytest.approx(visible, rel=2e-3)


def test_pi0_splits_into_two_photons():
    calo = Calorimeter()
    trace = ppx.LocalModel(lambda: calo.deposit([_head_on(111, 30.0)])).run()
    e0 = float(trace["particle0/gamma0/visible_energy"])
    e1 = float(trace["particle0/gamma1/visible_energy"])
    assert e0 + e1 == pytest.approx(30.0, rel=0.1)
    assert float(trace.result.sum()) == pytest.approx(e0 + e1, rel=2e-3)


def test_inclined_shower_axis_moves_with_depth():
    calo = Calorimeter()
    deposit = calo.deposit([IncomingParticle(11, (50.0, 5.0, 0.0, 50.0), (2.0, 0.0))])
    x = 0.5 * (calo._x_edges[1:] + calo._x_edges[:-1])
    per_slice = deposit.sum(1)  # (nx, nz)
    centroid = (x[:, None] * per_slice).sum(0) / per_slice.sum(0)
    for k in (0, 2, 4):
        assert float(centroid[k]) == pytest.approx(2.0 + 0.1 * float(calo._z_centres[k]), abs=0.2)


def test_observe_and_total_tag():
    observed = torch.zeros(7, 7, 10)
    config = CalorimeterConfig(shape=(7, 7, 10), noise=0.05)
    trace = ppx.LocalModel(make_model(config=config, observed=observed)).run()
    assert len(trace.observes) == 1
    assert trace.observes[0].distribution.batch_shape == (7, 7, 10)
    assert math.isfinite(trace.log_likelihood)
    assert float(trace["calo/total"]) > 0


def test_addresses_are_stable():
    calo = Calorimeter(shape=(5, 5, 5))
    particles = [_head_on(22, 5.0), _head_on(111, 8.0), _head_on(-211, 9.0), _head_on(13, 4.0)]
    model = ppx.LocalModel(lambda: calo.observe(particles))
    first, second = ([d.address for d in model.run()] for _ in range(2))
    assert first == second
    assert "particle2/visible_fraction__Normal__1" in first
    assert "particle1/gamma1/shower_start__Exponential__1" in first


@pytest.mark.parametrize(
    ("build", "parameter"),
    [
        (lambda: IncomingParticle(22, (-1.0, 0.0, 0.0, 1.0)), "momentum"),
        (lambda: IncomingParticle(9999999, (1.0, 0.0, 0.0, 1.0)), "pdg"),
        (lambda: IncomingParticle(15, (1.0, 0.0, 0.0, 1.0)), "pdg"),
        (lambda: CalorimeterConfig(shape=(35, 35, 0)), "shape"),
        (lambda: CalorimeterConfig(cell_size=(1.0, -1.0, 1.0)), "cell_size"),
        (lambda: Calorimeter(noise=-0.1), "noise"),
        (lambda: Calorimeter(em_stochastic=-0.1), "em_stochastic"),
        (lambda: make_model(energy=(5.0, 1.0)), "energy"),
        (lambda: make_model(pdg=123456789), "pdg"),
    ],
)
def test_bad_parameters_raise(build, parameter):
    with pytest.raises(ValueError, match=parameter):
        build()
