"""Rate fits through Gillespie simulations (``fit_rates``) and the ``ppx grad`` commands.

Every fit here recovers rates from synthetic data simulated at known rates. The
tolerance is three of the fit's own standard errors: that error is the data's
statistical error (a sandwich estimate from the covariance of the data's
statistics, computed from the data) and the simulations' (Polyak-Ruppert, from
the spread of the last gradients) in quadrature, so the truth lies within
``3 s.e.`` in 99.7% of data sets; the seeds are fixed, so the test is
deterministic. Each test also bounds the error itself, so that a vacuous error
cannot pass: with ``N = 1000`` runs the mean count near ``k / gamma = 10`` has a
standard error of about ``0.1``, so that of ``k`` is a few tenths at most.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppx.inference.gradients.fit import FitResult, fit_rates
from ppx.simulators.gillespie import ReactionNetwork, simulate

TIMES = (1.0, 2.0, 5.0)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def birth_death_data() -> np.ndarray:
    network = ReactionNetwork.birth_death()
    return np.asarray(simulate(network, rates={"k": 10.0, "gamma": 1.0},
                               observation_times=TIMES, num_samples=1000, seed=1))  # fmt: skip


def _within(result: FitResult, truth: dict[str, float], most: dict[str, float]) -> None:
    for name, true in truth.items():
        value, error = result[name]
        assert 0 < error < most[name], (name, value, error)
        assert abs(value - true) < 3 * error, (name, value, error, true)


def test_fits_the_birth_rate_with_the_death_rate_known(birth_death_data):
    network = ReactionNetwork.birth_death()
    result = fit_rates(network, birth_death_data, fit=("k",), init={"k": 5.0},
                       observation_times=TIMES, num_samples=128, steps=100, seed=0,
                       progress=False)  # fmt: skip
    _within(result, {"k": 10.0}, {"k": 0.3})
    assert result.rates["gamma"] == 1.0 and result.trajectory.shape == (101, 1)
    assert result.loss[-10:].mean() < 0.01 * result.loss[0]


def test_fits_both_rates_of_birth_death(birth_death_data, tmp_path):
    network = ReactionNetwork.birth_death()
    result = fit_rates(network, birth_death_data, init={"k": 5.0, "gamma": 2.0},
                       observation_times=TIMES, num_samples=256, steps=100, seed=0,
                       progress=False)  # fmt: skip
    _within(result, {"k": 10.0, "gamma": 1.0}, {"k": 0.5, "gamma": 0.06})
    assert result.statistics == ("mean X t=1", "mean X t=2", "mean X t=5")
    path = result.plot(tmp_path / "fit.png", truth={"k": 10.0, "gamma": 1.0})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fits_the_association_rate():
    network, times = ReactionNetwork.association(), (0.5, 1.0, 2.0)
    data = simulate(network, rates={"k_on": 0.1, "k_off": 1.0}, observation_times=times,
                    num_samples=1000, seed=2)  # fmt: skip
    result = fit_rates(network, data, fit=("k_on",), init={"k_on": 0.05}, observation_times=times,
                       num_samples=128, steps=60, seed=0, progress=False)  # fmt: skip
    _within(result, {"k_on": 0.1}, {"k_on": 0.01})


@pytest.mark.slow
def test_fits_two_repressilator_rates():
    """The oscillator of the issue: translation and protein decay from 400 runs (~45 s)."""
    network = ReactionNetwork.repressilator()
    truth, times = {"translation": 5.0, "protein_decay": 0.5}, (2.0, 4.0, 6.0)
    data = simulate(network, rates=truth, observation_times=times, num_samples=400, seed=1)
    result = fit_rates(network, data, fit=tuple(truth),
                       init={"translation": 2.5, "protein_decay": 1.0}, observation_times=times,
                       num_samples=128, steps=100, learning_rate=0.1, seed=2,
                       progress=False)  # fmt: skip
    _within(result, truth, {"translation": 0.5, "protein_decay": 0.05})


def test_steady_state_statistics_come_from_the_window(birth_death_data):
    network = ReactionNetwork.birth_death()
    result = fit_rates(network, birth_death_data, fit=("k",), init={"k": 9.0},
                       observables=("steady_mean", "variance"), observation_times=TIMES,
                       average_from=1.5, num_samples=32, steps=2, seed=0,
                       progress=False)  # fmt: skip
    pooled = birth_death_data[:, 1:, 0]
    assert result.target[0] == pytest.approx(pooled.mean())
    assert result.target[1:] == pytest.approx(birth_death_data[:, :, 0].var(0, ddof=1))
    assert result.statistics[0] == "steady_mean X" and len(result.statistics) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fit": ("zz",)}, "fit: need distinct rate names"),
        ({"init": {"k": -1.0}}, "'k' must be finite and > 0"),
        ({"init": {"zz": 1.0}}, "unknown rate names"),
        ({"data": np.zeros((10, 2, 1))}, "data: need (trajectories >= 2, times, species)"),
        ({"data": np.zeros((10, 3, 2))}, "data: need"),
        ({"data": -np.ones((10, 3, 1))}, "counts must be finite and >= 0"),
        ({"steps": 0}, "steps: need at least 1"),
        ({"observables": ("median",)}, "observables:"),
        ({"estimator": "magic"}, "estimator:"),
        ({"estimator": "gumbel", "temperature": 0.0}, "temperature:"),
        ({"num_samples": 3}, "num_samples:"),
        ({"learning_rate": -1.0}, "learning_rate:"),
    ],
)
def test_bad_input_says_why(change, message):
    arguments = {"data": np.ones((10, 3, 1)), "observation_times": TIMES, "progress": False}
    arguments.update(change)
    with pytest.raises(ValueError) as raised:
        fit_rates(ReactionNetwork.birth_death(), **arguments)
    assert message in str(raised.value)


def _ppx(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from ppx.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    captured = capsys.readouterr()
    return int(exit_.value.code or 0), captured.out, captured.err


def test_grad_estimate_prints_every_estimator_and_the_reference(capsys):
    code, out, err = _ppx(["grad", "estimate", "--network", "association", "--observable",
                           "at:C:0", "--times", "0.5", "--rate", "k_on=0.1", "--samples", "64",
                           "--seed", "1"], capsys)  # fmt: skip
    assert code == 0, err
    for row in ("score", "gumbel", "alternative", "finite difference", "d E[f] / d k_on"):
        assert row in out, out


def test_grad_fit_prints_the_fit_and_writes_the_plot(capsys, tmp_path):
    plot = tmp_path / "fit.png"
    code, out, err = _ppx(["grad", "fit", "--true-rate", "k=10", "--init", "k=8", "--steps", "3",
                           "--samples", "16", "--data-samples", "50", "--seed", "0",
                           "--plot", str(plot)], capsys)  # fmt: skip
    assert code == 0, err
    assert "pull" in out and plot.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["estimate", "--network", "nope"], "unknown network 'nope'"),
        (["estimate", "--observable", "bad"], "expects kind:species[:time_index]"),
        (["estimate", "--observable", "at:Q:0"], "no species 'Q'"),
        (["estimate", "--observable", "at:X:4"], "time_index must be in 0..0"),
        (["estimate", "--observable", "median:X"], "kind must be one of"),
        (["estimate", "--rate", "k=-1"], "value > 0, got 'k=-1'"),
        (["estimate", "--temperature", "0"], "--temperature: must be > 0"),
        (["estimate", "--estimator", "magic"], "must be all or one of"),
        (["fit", "--init", "gamma=0"], "value > 0, got 'gamma=0'"),
        (["fit", "--fit", "zz"], "fit: need distinct rate names"),
        (["fit", "--network", "nope"], "unknown network"),
        (["fit", "--times", "2,1"], "strictly increasing"),
    ],
)
def test_grad_bad_input_is_one_line_with_exit_code_2(args, message, capsys):
    code, out, err = _ppx(["grad", *args, "--samples", "8"], capsys)
    assert code == 2, out + err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"ppx grad {args[0]}: "), err
