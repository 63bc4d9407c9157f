"""Tau decay: conservation, channel fractions, line shapes, boosts, addresses."""

from __future__ import annotations

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
HAS_DECAYLANGUAGE = importlib.util.find_spec("decaylanguage") is not None
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tau_inference.py"
M_TAU = td.mass(td.TAU)


def run_channel(channel: str, n: int, seed: int = 0) -> list[ppx.Trace]:
    torch.manual_seed(seed)
    model = ppx.LocalModel(td.make_model(channels=[channel], calorimeter=False))
    return [model.run() for _ in range(n)]


def minkowski(p4: torch.Tensor) -> torch.Tensor:
    return p4[..., 0] ** 2 - (p4[..., 1:] ** 2).sum(-1)


def tau_four_momentum(trace: ppx.Trace) -> torch.Tensor:
    p = torch.tensor([float(trace[k]) for k in ("px", "py", "pz")], dtype=torch.float64)
    return torch.cat([torch.sqrt(p @ p + M_TAU**2)[None], p])


def test_branching_fractions_are_a_distribution():
    fractions, source = td.branching_fractions()
    assert list(fractions) == list(td.CHANNELS)
    assert sum(fractions.values()) == pytest.approx(1.0, abs=1e-12)
    assert all(f > 0 for f in fractions.values())
    if HAS_DECAYLANGUAGE:
        assert source.startswith("decaylanguage")
    for name, pdg in td.PDG_FRACTIONS.items():  # the decay file agrees with the PDG
        assert fractions[name] == pytest.approx(pdg, abs=0.02), name


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
    # density 2 (1 - x). (m_e^2 / m_tau^2 ~ 1e-7 is negligible.) Checks the GENBOD weights.
    traces = run_channel("e_nu_nu", 500, seed=4)
    s12 = torch.stack([minkowski(t["final_state"][:2, 1:].sum(0)) for t in traces])
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
