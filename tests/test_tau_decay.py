"""Tau decay: conservation, channel fractions, line shapes, boosts, addresses."""

from __future__ import annotations

import argparse
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

import ppx
from ppx.simulators import tau_decay as td

HAS_CALORIMETER = importlib.util.find_spec("ppx.simulators.calorimeter") is not None
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tau_inference.py"
M_TAU = td.mass(td.TAU)


def run_channel(
    channel: str, n: int, seed: int = 0, polarization: float | tuple[float, float] = 0.0
) -> list[ppx.Trace]:
    torch.manual_seed(seed)
    sim = td.make_model(channels=[channel], calorimeter=False, polarization=polarization)
    model = ppx.LocalModel(sim)
    return [model.run() for _ in range(n)]


def minkowski(p4: torch.Tensor) -> torch.Tensor:
    return p4[..., 0] ** 2 - (p4[..., 1:] ** 2).sum(-1)


def tau_four_momentum(trace: ppx.Trace) -> torch.Tensor:
    p = torch.tensor([float(trace[k]) for k in ("px", "py", "pz")], dtype=torch.float64)
    return torch.cat([torch.sqrt(p @ p + M_TAU**2)[None], p])


def test_branching_fractions_are_the_pdg_values():
    fractions, source = td.branching_fractions()
    assert list(fractions) == list(td.CHANNELS)
    assert sum(fractions.values()) == pytest.approx(1.0, abs=1e-12)
    assert all(f > 0 for f in fractions.values())
    assert source.startswith("PDG 2026") and "pdg API" in source
    for channel, (pdgid, description) in td.PDG_MODES.items():
        value, error, found = td.pdg_branching_fraction(channel)
        assert found == description and error > 0, pdgid
        assert abs(fractions[channel] - value) <= error, channel
        assert abs(td.PDG_FRACTIONS[channel] - value) <= error, channel  # the fallback copy
    # absolute values (PDG 2026), to catch a wrong mapping that the API would repeat
    assert fractions["pi_nu"] == pytest.approx(0.1082, abs=0.0006)
    assert fractions["e_nu_nu"] == pytest.approx(0.1785, abs=0.0006)
    assert fractions["mu_nu_nu"] == pytest.approx(0.1737, abs=0.0006)
    assert fractions["pi_pi0_pi0_nu"] == pytest.approx(0.0926, abs=0.0011)
    assert fractions["3pi_nu"] == pytest.approx(0.0899, abs=0.0006)
    assert fractions["other"] == pytest.approx(0.0954, abs=0.003)


def test_branching_fractions_fall_back_loudly(monkeypatch):
    def broken() -> None:
        raise RuntimeError("no database")

    monkeypatch.setattr(td.channels, "_fractions_from_pdg", broken)
    td.branching_fractions.cache_clear()
    try:
        with pytest.warns(UserWarning, match="pdg API failed"):
            fractions, source = td.branching_fractions()
        assert "fallback" in source and fractions == td.PDG_FRACTIONS
    finally:
        td.branching_fractions.cache_clear()
    with pytest.raises(ValueError, match="channel"):
        td.pdg_branching_fraction("other")


def test_channel_frequencies_match_branching_fractions():
    torch.manual_seed(1)
    model = ppx.LocalModel(td.sample_channel)
    n = 4000
    names = [model.run().result for _ in range(n)]
    fractions, _ = td.branching_fractions()
    observed = [names.count(c) for c in td.CHANNELS]
    expected = [n * fractions[c] for c in td.CHANNELS]
    assert stats.chisquare(observed, expected).pvalue > 1e-3


@pytest.mark.parametrize("channel", list(td.CHANNELS))
def test_four_momentum_conservation_and_boost(channel):
    for trace in run_channel(channel, 8, seed=list(td.CHANNELS).index(channel)):
        assert int(trace["channel"]) == 0  # the only allowed channel
        final = trace["final_state"]
        assert final.dtype == torch.float64
        tau = tau_four_momentum(trace)
        total = final[:, 1:].sum(0)
        torch.testing.assert_close(total, tau, rtol=0, atol=1e-11 * float(tau[0]))
        assert math.sqrt(float(minkowski(total))) == pytest.approx(M_TAU, abs=1e-9)
        masses = torch.tensor([td.mass(int(pdg)) for pdg in final[:, 0]], dtype=torch.float64)
        torch.testing.assert_close(minkowski(final[:, 1:]), masses**2, rtol=0, atol=1e-9)


def truncated_bw_cdf(resonance: td.Resonance, low: float, high: float):
    """The CDF of the truncated Breit-Wigner by numerical integration of its density."""
    m0, gamma = td.mass(resonance.pdg), td.width(resonance.pdg)
    grid = np.linspace(low, high, 20001)
    density = 1.0 / ((grid - m0) ** 2 + gamma**2 / 4)
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(grid))])
    return lambda x: np.interp(x, grid, cdf / cdf[-1])


def test_rho_line_shape():
    traces = run_channel("pi_pi0_nu", 1000, seed=2)
    pairs = torch.stack([t["final_state"][:2, 1:].sum(0) for t in traces])
    assert all(t["final_state"][:2, 0].tolist() == [td.PI, td.PI0] for t in traces)
    masses = torch.sqrt(minkowski(pairs)).numpy()
    low = td.mass(td.PI) + td.mass(td.PI0)
    cdf = truncated_bw_cdf(td.RHO, low, M_TAU)
    assert stats.kstest(masses, cdf).pvalue > 1e-3


def test_a1_line_shape():
    traces = run_channel("3pi_nu", 300, seed=3)
    masses = torch.sqrt(minkowski(torch.stack([t["final_state"][:3, 1:].sum(0) for t in traces])))
    cdf = truncated_bw_cdf(td.A1_CHARGED, 3 * td.mass(td.PI), M_TAU)
    assert stats.kstest(masses.numpy(), cdf).pvalue > 1e-3


def test_three_body_phase_space_is_flat():
    # Massless three-body phase space is flat in the Dalitz plot: x = s12 / M^2 has
    # density 2 (1 - x). Checks the GENBOD weights.
    parent = torch.tensor([M_TAU, 0.0, 0.0, 0.0], dtype=torch.float64)
    torch.manual_seed(4)
    model = ppx.LocalModel(lambda: torch.stack(td.phase_space(parent, M_TAU, [0.0, 0.0, 0.0])))
    s12 = torch.stack([minkowski(model.run().result[:2].sum(0)) for _ in range(500)])
    x = (s12 / M_TAU**2).numpy()
    assert stats.kstest(x, lambda v: 1 - (1 - np.clip(v, 0, 1)) ** 2).pvalue > 1e-3


def test_boost_takes_rest_frame_to_parent():
    parent = torch.tensor([0.0, 0.3, -0.4, 45.0], dtype=torch.float64)
    parent[0] = torch.sqrt(parent[1:] @ parent[1:] + M_TAU**2)
    at_rest = torch.tensor([M_TAU, 0.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(td.boost(at_rest, parent, M_TAU), parent, rtol=1e-14, atol=1e-12)
    p = torch.tensor([[1.0, 0.2, -0.5, 0.6], [0.8, -0.2, 0.5, -0.6]], dtype=torch.float64)
    boosted = td.boost(p, parent, M_TAU)
    torch.testing.assert_close(minkowski(boosted), minkowski(p), rtol=0, atol=1e-10)


def test_addresses_are_stable():
    first, second = run_channel("pi_nu", 2, seed=5)
    assert [d.address for d in first] == [d.address for d in second]
    for name in ("px", "py", "pz", "channel", "tau/cos_theta", "tau/phi"):
        assert name in first
    assert 40 <= float(first["pz"]) <= 50 and -1 <= float(first["px"]) <= 1


def rest_frame(p4: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """``p4`` (lab) in the tau rest frame reached by the pure boost along its flight."""
    return td.boost(p4, tau * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=tau.dtype), M_TAU)


def cos_theta_star(trace: ppx.Trace, rows: slice) -> float:
    """cos of the angle of the summed ``rows`` to the tau flight direction, tau rest frame."""
    tau = tau_four_momentum(trace)
    p = rest_frame(trace["final_state"][rows, 1:].sum(0), tau)[1:]
    return float(p @ tau[1:] / (p.norm() * tau[1:].norm()))


def linear_cdf(alpha_p: float):
    """The CDF of ``(1 + alpha_p c) / 2`` on ``[-1, 1]``."""
    return lambda c: (np.clip(c, -1, 1) + 1) / 2 + alpha_p * (np.clip(c, -1, 1) ** 2 - 1) / 4


def within(values: np.ndarray, expected: float, sigmas: float = 4.0) -> bool:
    error = values.std(ddof=1) / math.sqrt(len(values))
    return abs(values.mean() - expected) < sigmas * error


@pytest.mark.parametrize("polarization", [0.8, -0.8])
def test_pion_follows_the_polarised_law(polarization):
    traces = run_channel("pi_nu", 1500, seed=7, polarization=polarization)
    cos = np.array([cos_theta_star(t, slice(0, 1)) for t in traces])
    assert within(cos, polarization / 3)  # dN/dcos = (1 + P cos) / 2
    assert stats.kstest(cos, linear_cdf(polarization)).pvalue > 1e-3
    x = np.array([float(t["final_state"][0, 1] / tau_four_momentum(t)[0]) for t in traces])
    r = (td.mass(td.PI) / M_TAU) ** 2  # collinear limit: x = (1 + r) / 2 + (1 - r) / 2 cos
    assert within(x, (1 + r) / 2 + (1 - r) / 2 * polarization / 3)
    assert x.mean() > 0.5 if polarization > 0 else x.mean() < 0.5


def test_rho_direction_has_the_vector_analysing_power():
    polarization = 0.9
    traces = run_channel("pi_pi0_nu", 1200, seed=8, polarization=polarization)
    cos = np.array([cos_theta_star(t, slice(0, 2)) for t in traces])
    m_rho = [math.sqrt(float(minkowski(t["final_state"][:2, 1:].sum(0)))) for t in traces]
    alpha = np.array([td.analysing_power(M_TAU, m, vector=True) for m in m_rho])
    assert 0.3 < alpha.mean() < 0.6  # (m_tau^2 - 2 m^2) / (m_tau^2 + 2 m^2) near m_rho
    assert within(cos - alpha * polarization / 3, 0.0)


def lepton_cdf(polarization: float):
    def cdf(x: np.ndarray) -> np.ndarray:
        x = np.clip(x, 0, 1)
        unpolarized = 5 / 3 * x - x**3 + x**4 / 3
        return unpolarized + polarization * (x / 3 - x**3 + 2 / 3 * x**4)

    return cdf


@pytest.mark.parametrize("polarization", [1.0, -1.0, 0.0])
def test_lepton_energy_follows_the_polarised_michel_law(polarization):
    traces = run_channel("e_nu_nu", 1500, seed=9, polarization=polarization)
    x = np.array([float(t["final_state"][0, 1] / tau_four_momentum(t)[0]) for t in traces])
    assert td.lepton_mean_x(polarization) == pytest.approx(0.35 - 0.05 * polarization)
    assert within(x, td.lepton_mean_x(polarization))
    assert stats.kstest(x, lepton_cdf(polarization)).pvalue > 1e-3


def test_unpolarised_hadrons_are_drawn_as_before():
    # P = 0: the two-body angle is isotropic about the lab axes, as before P existed.
    for trace in run_channel("pi_nu", 5, seed=10):
        theta, phi = math.acos(float(trace["tau/cos_theta"])), float(trace["tau/phi"])
        expected = [math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi)]
        p = rest_frame(trace["final_state"][0, 1:], tau_four_momentum(trace))[1:]
        n = (p / p.norm()).tolist()
        assert n == pytest.approx([*expected, math.cos(theta)], abs=1e-9)
    # channels without a polarised law ignore P, draw for draw
    for channel in ("3pi_nu", "other"):
        plain, tilted = run_channel(channel, 1, 11)[0], run_channel(channel, 1, 11, 0.9)[0]
        assert torch.equal(plain["final_state"], tilted["final_state"])
    cos = np.array([cos_theta_star(t, slice(0, 1)) for t in run_channel("k_nu", 1000, 12)])
    assert within(cos, 0.0) and stats.kstest(cos, linear_cdf(0.0)).pvalue > 1e-3


def test_linear_cos_theta_inverts_its_cdf():
    c = np.linspace(-1, 1, 101)
    assert [td.linear_cos_theta(v, 0.0) for v in c] == c.tolist()  # exact at a = 0
    for a in (-1.0, -0.4, 0.7, 1.0):
        x = np.array([td.linear_cos_theta(v, a) for v in c])
        np.testing.assert_allclose(linear_cdf(a)(x), (c + 1) / 2, atol=1e-12)
    with pytest.raises(ValueError, match="asymmetry"):
        td.linear_cos_theta(0.0, 1.5)


def test_analytic_laws_are_normalised():
    x = torch.linspace(0, 1, 20001, dtype=torch.float64)
    for p in (-1.0, -0.3, 0.0, 0.6, 1.0):
        lepton = td.lepton_x_density(x, p)
        assert isinstance(lepton, torch.Tensor) and bool((lepton >= -1e-12).all())
        assert float(torch.trapezoid(lepton, x)) == pytest.approx(1.0, abs=1e-8)
        mean = float(torch.trapezoid(x * lepton, x))
        assert mean == pytest.approx(td.lepton_mean_x(p), abs=1e-8)
        pion = td.pion_x_density(x, p)
        assert float(torch.trapezoid(x * pion, x)) == pytest.approx(0.5 + p / 6, abs=1e-8)


def test_polarisation_prior_is_a_latent():
    traces = run_channel("pi_nu", 20, seed=13, polarization=(-1.0, 1.0))
    first = [d.address for d in traces[0]]
    assert first.index("polarization__Uniform__1") == first.index("pz__Uniform__1") + 1
    values = [float(t["polarization"]) for t in traces]
    assert all(-1 <= v <= 1 for v in values) and len(set(values)) == 20
    assert "polarization" not in run_channel("pi_nu", 1, polarization=0.5)[0]
    parser = argparse.ArgumentParser()
    td.add_arguments(parser)
    args = parser.parse_args(["--no-calorimeter", "--polarization", "-0.5", "0.5"])
    assert td.quantities(args)["polarization"]["label"] == "$P_{\\tau}$"
    assert "polarization" in ppx.LocalModel(td.from_arguments(args)).run()
    fixed = parser.parse_args(["--no-calorimeter", "--polarization", "0.3"])
    assert "polarization" not in td.quantities(fixed)


@pytest.mark.parametrize(
    "bad", [1.5, -1.01, float("nan"), "left", (-2.0, 0.0), (0.5, 0.5), (0.5, 0.1), (0, 1, 2)]
)
def test_bad_polarisation_raises(bad):
    with pytest.raises(ValueError, match="polarization"):
        td.make_model(polarization=bad, calorimeter=False)


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match=r"momentum_prior\['px'\]"):
        td.make_model(momentum_prior={"px": (1, -1), "py": (-1, 1), "pz": (40, 50)})
    with pytest.raises(ValueError, match=r"momentum_prior\['pz'\]"):
        td.make_model(momentum_prior={"px": (-1, 1), "py": (-1, 1), "pz": (40, 40)})
    with pytest.raises(ValueError, match="momentum_prior needs"):
        td.make_model(momentum_prior={"px": (-1, 1)}, calorimeter=False)
    with pytest.raises(ValueError, match="channels"):
        td.make_model(channels=["tau_to_unicorns"], calorimeter=False)
    with pytest.raises(ValueError, match="channel"):
        td.decay_channel(torch.zeros(4, dtype=torch.float64), "nope")
    with pytest.raises(ValueError, match="polarization"):
        td.decay_channel(torch.zeros(4, dtype=torch.float64), "pi_nu", polarization=-1.1)


@pytest.mark.skipif(not HAS_CALORIMETER, reason="ppx.simulators.calorimeter is not available")
def test_end_to_end_with_calorimeter(tmp_path):
    torch.manual_seed(6)
    model = ppx.LocalModel(td.make_model())
    truth = model.run()
    observed = torch.zeros(35, 35, 20)
    trace = model.run(observe={"calo": observed})
    assert math.isfinite(trace.log_likelihood)
    assert "calo" in trace and "final_state" in truth.tags
    png = tmp_path / "posterior.png"  # the example, tiny
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--num-traces", "8", "--plot", str(png)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "posterior P(channel)" in done.stdout
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
