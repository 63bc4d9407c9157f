"""Event ensembles from PPX programs: both ways of writing a set, the ragged store, resume.

The model is the hierarchical Gaussian: ``mu ~ N(0, 1)``; per event
``z ~ N(mu, tau^2)``, ``x ~ N(z, sigma^2)`` with ``tau = 0.5``, ``sigma = 1``.
Given ``mu``, the mean of a set's ``N`` values of ``x`` is ``N(mu, (tau^2 +
sigma^2) / N)``, which the statistical checks test. Run as a script, this file
serves the one_run program (``--address ADDR``) for the remote and Dask tests.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.distributions import Normal, Poisson

import ppx
from ppx.inference.sets.ensembles import simulate_ensembles
from ppx.inference.sets.set_store import load_sets, set_size

TAU, SIGMA = 0.5, 1.0
SCRIPT = [sys.executable, str(Path(__file__).resolve())]
RUNS = [0]


def hierarchical(num_events: float = 5.0) -> None:
    """one_run: ``mu``, then ``num_events`` events in scopes ``event0``, ``event1``, ..."""
    RUNS[0] += 1
    mu = ppx.sample(Normal(0.0, 1.0), name="mu")
    n = int(ppx.sample(Poisson(num_events), name="num_events"))
    for i in range(n):
        with ppx.scope(f"event{i}"):
            z = ppx.sample(Normal(mu, TAU), name="z")
            ppx.observe(Normal(z, SIGMA), name="x")
            ppx.tag(z * z, name="z2")


def one_event() -> None:
    """per_event: one event of the same model."""
    RUNS[0] += 1
    mu = ppx.sample(Normal(0.0, 1.0), name="mu")
    z = ppx.sample(Normal(mu, TAU), name="z")
    ppx.observe(Normal(z, SIGMA), name="x")


def at_least_one_event() -> None:
    """one_run deciding its own number of events, 1 + Poisson(3)."""
    mu = ppx.sample(Normal(0.0, 1.0), name="mu")
    for i in range(1 + int(ppx.sample(Poisson(3.0), name="k"))):
        with ppx.scope(f"event{i}"):
            ppx.sample(Normal(mu, 1.0), name="x")


def maybe_empty() -> None:
    """one_run that sometimes makes no event at all."""
    mu = ppx.sample(Normal(0.0, 1.0), name="mu")
    for i in range(int(ppx.sample(Poisson(0.3), name="k"))):
        with ppx.scope(f"event{i}"):
            ppx.sample(Normal(mu, 1.0), name="x")


def uncontrolled_mu() -> None:
    """per_event with a global the engine cannot replay (each run would redraw it)."""
    mu = ppx.sample(Normal(0.0, 1.0), name="mu", control=False)
    ppx.observe(Normal(mu, SIGMA), name="x")


def sometimes_nan() -> None:
    """per_event whose events are NaN when ``mu > 1``."""
    mu = ppx.sample(Normal(0.0, 1.0), name="mu")
    ppx.tag(mu if mu < 1.0 else torch.tensor(float("nan")), name="x")


def local(program=hierarchical) -> ppx.LocalModel:
    return ppx.LocalModel(program, name="hier")


def standardized_means(sets, column: int = 0) -> np.ndarray:
    """``(mean of x - mu) / sqrt((tau^2 + sigma^2) / N)`` of each set."""
    means = np.array([float(sets.events(k)[:, column].mean()) for k in range(len(sets))])
    scale = np.sqrt((TAU**2 + SIGMA**2) / sets.sizes)
    return (means - sets.theta[:, 0].numpy()) / scale


def assert_standard_normal(residuals: np.ndarray) -> None:
    """Mean 0 and sd 1 within 4 Monte Carlo standard errors."""
    m = len(residuals)
    assert abs(residuals.mean()) < 4 / math.sqrt(m), residuals.mean()
    assert abs(residuals.var(ddof=1) - 1) < 4 * math.sqrt(2 / (m - 1)), residuals.var(ddof=1)


# -- both modes: statistics and sizes ------------------------------------------------------
@pytest.mark.parametrize("mode", ["one_run", "per_event"])
def test_set_means_of_x_are_distributed_around_mu_with_variance_over_n(mode):
    program = hierarchical if mode == "one_run" else one_event
    sets = simulate_ensembles(
        local(program), ["mu"], ["x", "z"], 200, n=(5, 20), mode=mode, seed=1, progress=False
    )
    assert len(sets) == 200 and sets.theta.shape == (200, 1)
    assert sets.data.shape == (int(sets.sizes.sum()), 2) and sets.event_dim == 2
    assert_standard_normal(standardized_means(sets))
    # the local latents scatter around their set's mu with variance tau^2
    mu = torch.repeat_interleave(sets.theta[:, 0], torch.from_numpy(sets.sizes))
    spread = float((sets.data[:, 1] - mu).var())
    assert abs(spread - TAU**2) < 4 * TAU**2 * math.sqrt(2 / len(mu))
    assert sets.settings["mode"] == mode and "Normal" in repr(sets.prior)


def test_variable_set_sizes_are_recorded_and_reproducible():
    sets = simulate_ensembles(local(), ["mu"], ["x"], 40, n=(2, 9), seed=5, progress=False)
    assert list(sets.sizes) == [set_size((2, 9), 5, k) for k in range(40)]
    assert sets.sizes.min() >= 2 and sets.sizes.max() <= 9 and len(set(sets.sizes)) > 3
    assert list(sets.offsets) == [0, *np.cumsum(sets.sizes)]
    assert list(sets.sets) == list(range(40))

    def draw(rng: np.random.Generator) -> int:
        return int(rng.integers(1, 4))

    per_event = simulate_ensembles(
        local(one_event), ["mu"], ["x"], 30, n=draw, mode="per_event", progress=False
    )
    assert set(per_event.sizes) <= {1, 2, 3} and per_event.sizes.sum() == len(per_event.data)
    own = simulate_ensembles(local(at_least_one_event), ["mu"], ["x"], 30, progress=False)
    assert own.sizes.min() >= 1 and len(set(own.sizes)) > 2
    assert own.settings["n"] == "program"


@pytest.mark.parametrize("mode", ["one_run", "per_event"])
def test_globals_drawn_from_a_given_prior_are_imposed_on_every_event(mode):
    program = hierarchical if mode == "one_run" else one_event
    prior = Normal(torch.full((1,), 5.0), 0.01)
    sets = simulate_ensembles(
        local(program), ["mu"], ["z"], 20, n=(2, 5), mode=mode, prior=prior, progress=False
    )
    assert (sets.theta - 5).abs().max() < 0.05 and sets.prior is prior
    assert abs(float(sets.data.mean()) - 5) < 4 * TAU / math.sqrt(len(sets.data)) + 0.05
    assert sets.settings["theta_source"] == repr(prior)


def test_sets_with_nan_are_dropped_counted_and_recorded(tmp_path):
    store = tmp_path / "sets.h5"
    with pytest.warns(UserWarning, match=r"sets of simulator 'hier' had NaN.*invalid_set"):
        sets = simulate_ensembles(
            local(sometimes_nan), ["mu"], ["x"], 60, n=3, mode="per_event", store=store
        )
    assert 0 < sets.num_invalid < 30 and len(sets) == 60 - sets.num_invalid
    assert (sets.theta < 1).all() and torch.isfinite(sets.data).all()
    with h5py.File(store) as file:
        assert len(file["invalid_set"]) == sets.num_invalid


def test_events_and_padded_batches():
    sets = simulate_ensembles(local(), ["mu"], ["x", "z2"], 12, n=(1, 6), progress=False)
    events, mask = sets.padded()
    assert events.shape == (12, int(sets.sizes.max()), 2) and mask.dtype == torch.bool
    assert list(mask.sum(1)) == list(sets.sizes)
    for k in range(12):
        assert torch.equal(events[k, : sets.sizes[k]], sets.events(k))
        assert not events[k, sets.sizes[k] :].any()
    short, short_mask = sets.padded(2, index=[3, 0])
    assert short.shape == (2, 2, 2) and torch.equal(short[0], sets.events(3)[:2])
    assert torch.equal(short_mask.sum(1), torch.from_numpy(np.minimum(sets.sizes[[3, 0]], 2)))
    assert torch.equal(sets.events(-1), sets.events(11))
    with pytest.raises(IndexError, match="out of range"):
        sets.events(12)
    with pytest.raises(ValueError, match="max_n >= 1"):
        sets.padded(0)


# -- the store ---------------------------------------------------------------------------
def test_store_round_trip_and_resume_makes_only_the_missing_sets(tmp_path):
    store = tmp_path / "sets.h5"
    options = {"n": (2, 7), "seed": 3, "chunk_size": 20, "progress": False}
    RUNS[0] = 0
    first = simulate_ensembles(local(), ["mu"], ["x"], 50, store=store, **options)
    assert len(first) == 50 and RUNS[0] == 51  # one probe run, then one run a set
    RUNS[0] = 0
    resumed = simulate_ensembles(local(), ["mu"], ["x"], 100, store=store, **options)
    assert RUNS[0] == 51  # the probe, then only sets 50 .. 99
    whole = simulate_ensembles(local(), ["mu"], ["x"], 100, **options)
    loaded = load_sets(store)
    for sets in (resumed, loaded):
        assert torch.equal(sets.theta, whole.theta) and torch.equal(sets.data, whole.data)
        assert list(sets.offsets) == list(whole.offsets) and list(sets.sets) == list(range(100))
    assert torch.equal(load_sets(store, 50).data, first.data)
    assert loaded.settings == {
        "mode": "one_run", "events": "event{i}", "size_name": "num_events", "n": "(2, 7)",
        "seed": 3, "theta_source": "program",
    }  # fmt: skip
    with h5py.File(store) as file:
        assert file["offsets"].shape == (101,) and file["events"].shape == (whole.sizes.sum(), 1)
        assert file.attrs["simulator"] == "hier" and file["theta"].shape == (100, 1)


def test_store_of_other_settings_is_refused_with_the_reason(tmp_path):
    store = tmp_path / "sets.h5"
    simulate_ensembles(local(), ["mu"], ["x"], 5, n=3, store=store, seed=1, progress=False)
    with pytest.raises(ValueError, match=r"seed 1 \(this job: 2\)"):
        simulate_ensembles(local(), ["mu"], ["x"], 5, n=3, store=store, seed=2)
    with pytest.raises(ValueError, match=r"n '3' \(this job: '4'\)"):
        simulate_ensembles(local(), ["mu"], ["x"], 5, n=4, store=store, seed=1)
    with pytest.raises(ValueError, match="another layout"):
        simulate_ensembles(local(), ["mu"], ["x", "z"], 5, n=3, store=store, seed=1)
    other = tmp_path / "other.h5"
    h5py.File(other, "w").close()
    with pytest.raises(ValueError, match="not a PPX ensemble store"):
        simulate_ensembles(local(), ["mu"], ["x"], 5, n=3, store=other)


# -- served simulators and Dask ------------------------------------------------------------
def test_served_one_run_program_makes_the_same_sizes_and_statistics():
    with ppx.RemoteModel.spawn(SCRIPT) as model:
        remote = simulate_ensembles(model, ["mu"], ["x"], 80, n=(3, 8), seed=4, progress=False)
    assert remote.layout.simulator == "hier"
    assert remote.layout.data[0].address.startswith("event0/x")
    # sizes come from (seed, set index) alone; a remote run's draws are another stream
    assert list(remote.sizes) == [set_size((3, 8), 4, k) for k in range(80)]
    assert_standard_normal(standardized_means(remote))


@pytest.mark.slow
def test_two_dask_workers_with_served_simulators_make_the_same_store(tmp_path):
    store = tmp_path / "sets.h5"
    options = {"n": (2, 6), "seed": 8, "progress": False}
    spec = ppx.ModelSpec("spawn", SCRIPT)
    sets = simulate_ensembles(
        spec, ["mu"], ["x"], 80, store=store, workers=2, chunk_size=10, **options
    )
    with ppx.RemoteModel.spawn(SCRIPT) as model:  # the same simulator, here, in one chunk
        here = simulate_ensembles(model, ["mu"], ["x"], 80, chunk_size=80, **options)
    # set k is seeded from (seed, k) wherever it is made
    assert torch.equal(sets.theta, here.theta) and torch.equal(sets.data, here.data)
    assert list(load_sets(store).offsets) == list(here.offsets)


# -- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"globals": ["sigma"]}, r"parameter 'sigma' is not a draw .*'mu'"),
        ({"data": ["y"]}, r"no events \(no data named like \['event\{i\}/y'\]\).*'event0/x'"),
        ({"n": 0}, "n must be >= 1"),
        ({"n": (3, 2)}, r"1 <= lo <= hi"),
        ({"n": lambda rng: 0}, "gave 0 events for set 0"),
        ({"mode": "both"}, "mode must be"),
        ({"events": "event"}, "must contain"),
        ({"size_name": "count"}, "sample named 'count'"),
        ({"num_sets": 0}, "num_sets and chunk_size >= 1"),
    ],
)
def test_bad_input_is_a_clear_error(arguments, message):
    options = {"globals": ["mu"], "data": ["x"], "num_sets": 3, "n": 2} | arguments
    with pytest.raises(ValueError, match=message):
        simulate_ensembles(local(), progress=False, **options)


def test_per_event_errors_name_what_the_program_has():
    with pytest.raises(ValueError, match="needs n"):
        simulate_ensembles(local(one_event), ["mu"], ["x"], 3, mode="per_event")
    with pytest.raises(ValueError, match=r"data 'w' was not produced.*'x'"):
        simulate_ensembles(local(one_event), ["mu"], ["w"], 3, n=2, mode="per_event")
    with pytest.raises(ValueError, match="parameters must be latent"):
        simulate_ensembles(local(one_event), ["x"], ["z"], 3, n=2, mode="per_event")
    with pytest.raises(ValueError, match=r"cannot impose globals \['mu'\].*control=False"):
        simulate_ensembles(local(uncontrolled_mu), ["mu"], ["x"], 3, n=2, mode="per_event")


def test_a_program_that_makes_an_empty_set_is_an_error():
    with pytest.raises(ValueError, match="made no events.*sets cannot be empty"):
        simulate_ensembles(local(maybe_empty), ["mu"], ["x"], 50, progress=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="serve the one_run hierarchical Gaussian")
    parser.add_argument("--address", required=True)
    ppx.serve(hierarchical, parser.parse_args().address, model_name="hier")
