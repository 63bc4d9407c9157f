"""The posterior object: statistics, resampling, ArviZ export, HDF5 round trips."""

from __future__ import annotations

import math
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import ppx
from ppx.inference import Empirical
from ppx.inference.hdf5 import read_records


def dict_records(name: str, values: np.ndarray) -> list[dict]:
    return [{name: value} for value in values]


def ar1(rng: np.random.Generator, phi: float, size: int) -> np.ndarray:
    """A stationary AR(1) chain with unit marginal variance."""
    noise = rng.normal(size=size) * math.sqrt(1 - phi**2)
    chain = np.empty(size)
    chain[0] = rng.normal()
    for t in range(1, size):
        chain[t] = phi * chain[t - 1] + noise[t]
    return chain


def records_equal(a: object, b: object) -> bool:
    """Same keys and exactly equal values (compared as numpy arrays)."""
    return set(a) == set(b) and all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


# quantiles and resampling


@pytest.mark.parametrize("q", [0.5, [0.0, 0.05, 0.25, 0.5, 0.9, 1.0], np.array([[0.1, 0.7]])])
def test_equal_weight_quantiles_are_numpys(q):
    values = np.random.default_rng(0).normal(size=(101, 3))
    posterior = Empirical(dict_records("v", values))
    np.testing.assert_array_equal(posterior.quantile("v", q), np.quantile(values, q, axis=0))
    scalar = Empirical(dict_records("x", values[:, 0]))
    np.testing.assert_array_equal(scalar.quantile("x", q), np.quantile(values[:, 0], q))


def test_weighted_quantiles_invert_the_weighted_cdf():
    """P(1)=.1, P(2)=.2, P(3)=.3, P(4)=.4; the zero-weight -100 is not in the support."""
    values = np.array([3.0, 1.0, 4.0, 2.0, -100.0])
    log_weights = np.log([0.3, 0.1, 0.4, 0.2, 1.0]) + [7, 7, 7, 7, -np.inf]
    posterior = Empirical(dict_records("x", values), log_weights)
    q = [0.0, 0.05, 0.1, 0.1 + 1e-9, 0.3, 0.31, 0.6, 0.61, 0.99, 1.0]
    expected = [1, 1, 1, 2, 2, 3, 3, 4, 4, 4]
    np.testing.assert_array_equal(posterior.quantile("x", q), expected)
    assert posterior.quantile("x", 0.5).shape == ()
    vector = Empirical(dict_records("v", np.stack([values, -values], 1)), log_weights)
    expected = [[1, -4], [3, -3], [4, -2]]  # -x: P(-4)=.4, P(-3)=.3, P(-2)=.2, P(-1)=.1
    np.testing.assert_array_equal(vector.quantile("v", [0.1, 0.45, 0.75]), expected)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        posterior.quantile("x", 1.5)


def test_resampling_reproduces_the_weighted_mean():
    values = np.random.default_rng(1).normal(size=5000)
    posterior = Empirical(dict_records("x", values), log_weights=values)  # tilted to N(1, 1)
    assert posterior.is_weighted
    generator = torch.Generator().manual_seed(3)
    resampled = posterior.sample(20_000, generator=generator)
    assert len(resampled) == 20_000 and not resampled.is_weighted and resampled.num_chains == 1
    error = float(posterior.std("x")) / math.sqrt(20_000)
    assert abs(float(resampled.mean("x")) - float(posterior.mean("x"))) < 4 * error
    again = posterior.sample(20_000, generator=torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(again.values("x"), resampled.values("x"))


def test_marginal_keeps_weights_chains_and_metadata():
    records = [{"a": float(i), "b": np.full(2, i)} for i in range(6)]
    posterior = Empirical(records, np.arange(6.0), [0, 0, 0, 1, 1, 1], {"engine": "test"})
    marginal = posterior.marginal("b")
    assert marginal.keys() == ["b"] and marginal.metadata == {"engine": "test"}
    np.testing.assert_array_equal(marginal.values("b"), posterior.values("b"))
    np.testing.assert_array_equal(marginal.weights, posterior.weights)
    np.testing.assert_array_equal(marginal.chain, posterior.chain)


def test_keys_are_those_of_every_record():
    records = [{"a": 1.0, "k": 0.0, "b": 2.0}, {"b": 3.0, "a": 4.0}]
    assert Empirical(records).keys() == ["a", "b"]
    with pytest.raises(KeyError, match="not a draw or tag"):
        Empirical(records).values("k")


# Trace records


def model() -> None:
    x = ppx.sample(torch.distributions.Normal(0.0, 1.0), name="x")
    ppx.sample(torch.distributions.Normal(x, 1.0))  # unnamed: keyed by address
    with ppx.scope("event"):
        normal = torch.distributions.Normal(torch.zeros(2), 1.0)
        ppx.sample(torch.distributions.Independent(normal, 1), name="v")
    ppx.tag(2 * x, name="twice")
    ppx.observe(torch.distributions.Normal(x, 1.0), name="obs")


def test_trace_and_dict_records_agree(tmp_path: Path):
    traces = [ppx.LocalModel(model).run(observe={"obs": 0.5}) for _ in range(40)]
    keys = Empirical(traces).keys()
    assert keys[0] == "x" and keys[2:] == ["event/v", "twice"] and "__Normal__" in keys[1]
    dicts = [{key: trace[key] for key in keys} for trace in traces]
    log_weights = [trace.log_likelihood for trace in traces]
    chains = [i % 2 for i in range(40)]
    a, b = Empirical(traces, log_weights, chains), Empirical(dicts, log_weights, chains)
    assert b.keys() == keys
    for key in keys:
        np.testing.assert_array_equal(a.values(key), b.values(key))
        np.testing.assert_array_equal(a.mean(key), b.mean(key))
        np.testing.assert_array_equal(a.quantile(key, [0.2, 0.8]), b.quantile(key, [0.2, 0.8]))
    sample_a = a.sample(50, generator=torch.Generator().manual_seed(0))
    sample_b = b.sample(50, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(sample_a.values("event/v"), sample_b.values("event/v"))
    unweighted = (
        Empirical(traces, chain=chains).to_arviz(),
        Empirical(dicts, chain=chains).to_arviz(),
    )
    for key in keys:
        np.testing.assert_array_equal(unweighted[0].posterior[key], unweighted[1].posterior[key])
    a.save(tmp_path / "traces.h5")
    loaded = Empirical.load(tmp_path / "traces.h5")
    assert loaded.keys() == keys
    for key in keys:
        np.testing.assert_array_equal(loaded.values(key), a.values(key))


# ArviZ


def test_to_arviz_iid_chains_have_rhat_one_and_full_ess():
    arviz = pytest.importorskip("arviz")
    draws = np.random.default_rng(2).normal(size=(4, 500))
    chain = np.repeat(np.arange(4), 500)
    data = Empirical(dict_records("x", draws.reshape(-1)), chain=chain).to_arviz()
    assert data.posterior["x"].shape == (4, 500)
    np.testing.assert_array_equal(data.posterior["x"].values, draws)
    assert float(arviz.rhat(data)["x"]) < 1.01
    assert 1400 < float(arviz.ess(data)["x"]) < 2600  # its sd over seeds is about 140


def test_to_arviz_keeps_chain_structure_of_interleaved_records():
    """AR(1) chains with phi = 0.95 interleaved record by record: ESS ~ 2000 * 0.05 / 1.95."""
    arviz = pytest.importorskip("arviz")
    rng = np.random.default_rng(3)
    chains = np.stack([ar1(rng, 0.95, 500) for _ in range(4)])
    records = dict_records("x", chains.T.reshape(-1))  # chain 0, 1, 2, 3, 0, 1...
    posterior = Empirical(records, chain=np.tile(np.arange(4), 500))
    data = posterior.to_arviz()
    np.testing.assert_array_equal(data.posterior["x"].values, chains)
    assert float(arviz.ess(data)["x"]) < 200


def test_to_arviz_shapes_vectors_and_unequal_chains():
    records = [{"v": np.arange(3.0) + i, "s": float(i)} for i in range(10)]
    chain = [0] * 6 + [1] * 4
    with pytest.warns(UserWarning, match="unequal length"):
        data = Empirical(records, chain=chain, metadata={"engine": "rmh"}).to_arviz()
    assert data.posterior["v"].shape == (2, 4, 3) and data.posterior["s"].shape == (2, 4)
    np.testing.assert_array_equal(data.posterior["s"].values, [[0, 1, 2, 3], [6, 7, 8, 9]])
    assert data.posterior.attrs["engine"] == "rmh"
    assert list(Empirical(records).to_arviz(["s"]).posterior.data_vars) == ["s"]


def test_to_arviz_resamples_weighted_records_into_one_chain():
    records = dict_records("x", np.arange(100.0))
    log_weights = np.where(np.arange(100) < 50, -np.inf, 0.0)
    generator = torch.Generator().manual_seed(0)
    data = Empirical(records, log_weights).to_arviz(generator=generator)
    assert data.posterior["x"].shape == (1, 100)
    assert data.posterior["x"].values.min() >= 50


def test_summary_of_scalar_names():
    rng = np.random.default_rng(4)
    records = [{"a": rng.normal(), "b": rng.normal(), "v": rng.normal(size=2)} for _ in range(400)]
    summary = Empirical(records, chain=np.repeat(np.arange(2), 200)).summary()
    assert list(summary.index) == ["a", "b"]
    assert {"mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "r_hat"} <= set(summary.columns)
    assert abs(summary.loc["a", "mean"]) < 4 / math.sqrt(400)
    one_chain = Empirical(records).summary(["a"])
    assert math.isnan(one_chain.loc["a", "r_hat"])


# saving and loading


def test_save_load_round_trip_is_exact(tmp_path: Path):
    rng = np.random.default_rng(5)
    records = [
        {"x": rng.normal(), "scope/y": rng.normal(size=2).astype(np.float32), "n": i % 3}
        for i in range(30)
    ]
    for index in range(0, 30, 4):  # trans-dimensional: some records have more keys
        records[index]["extra/z"] = rng.normal(size=(2, 2))
        records[index][".dot%"] = torch.tensor(float(index))
    metadata = {"engine": "rmh", "observe": {"obs0": 8.0}, "acceptance": [0.25, 0.5]}
    posterior = Empirical(records, rng.normal(size=30), np.arange(30) % 3, metadata)
    posterior.save(tmp_path / "post.h5")
    loaded = Empirical.load(tmp_path / "post.h5")
    np.testing.assert_array_equal(loaded.log_weights, posterior.log_weights)
    np.testing.assert_array_equal(loaded.weights, posterior.weights)
    np.testing.assert_array_equal(loaded.chain, posterior.chain)
    assert loaded.metadata == metadata
    assert all(records_equal(a, b) for a, b in zip(records, loaded.traces, strict=True))
    assert loaded.values("scope/y").dtype == np.float64
    assert loaded.traces[0]["scope/y"].dtype == np.float32
    with h5py.File(tmp_path / "post.h5") as file:
        assert file.attrs["format_version"] == 1 and "present" in file
        assert file["values/scope%2Fy"].attrs["key"] == "scope/y"


def test_equally_weighted_traces_save_and_load(tmp_path: Path):
    traces = ppx.LocalModel(model).prior(20)
    expected = Empirical(traces, metadata={"engine": "prior", "model": "demo"})
    expected.save(tmp_path / "post.h5")
    loaded = Empirical.load(tmp_path / "post.h5")
    assert loaded.metadata == {"engine": "prior", "model": "demo"}
    assert not loaded.is_weighted and loaded.num_chains == 1
    assert loaded.keys() == expected.keys()
    for key in expected.keys():
        np.testing.assert_array_equal(loaded.values(key), expected.values(key))
    stored = read_records(tmp_path / "post.h5")
    assert len(stored.records) == 20 and stored.chain.dtype == np.int64


def test_load_rejects_files_that_are_not_posteriors(tmp_path: Path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as file:
        file["data"] = np.zeros(3)
    with pytest.raises(ValueError, match="other.h5.*not a PPX posterior"):
        Empirical.load(other)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.txt.*not a PPX posterior"):
        Empirical.load(text)


def test_save_rejects_non_numeric_values(tmp_path: Path):
    with pytest.raises(TypeError, match="'label'"):
        Empirical([{"label": "a"}, {"label": "b"}]).save(tmp_path / "post.h5")


# merging, validation, repr


def test_merge_and_concat_keep_chain_ids():
    a = Empirical(dict_records("x", [1.0, 2.0]), chain=[0, 0], metadata={"engine": "rmh", "r": 0.1})
    b = Empirical(dict_records("x", [3.0, 4.0]), chain=[1, 1], metadata={"engine": "rmh", "r": 0.2})
    merged = Empirical.merge([a, b])
    np.testing.assert_array_equal(merged.values("x"), [1, 2, 3, 4])
    np.testing.assert_array_equal(merged.chain, [0, 0, 1, 1])
    assert merged.metadata == {"engine": "rmh", "r": [0.1, 0.2]} and merged.num_chains == 2
    np.testing.assert_array_equal(a.concat(b).chain, merged.chain)
    renumbered = a.concat([a, a], renumber_chains=True)
    np.testing.assert_array_equal(renumbered.chain, [0, 0, 1, 1, 2, 2])


def test_constructor_validates_its_arguments():
    records = dict_records("x", [1.0, 2.0])
    with pytest.raises(ValueError, match="2 records but 3 chain ids"):
        Empirical(records, chain=[0, 1, 2])
    with pytest.raises(ValueError, match="integers"):
        Empirical(records, chain=[0.5, 1])
    with pytest.raises(TypeError, match="JSON-able"):
        Empirical(records, metadata={"model": object()})
    with pytest.raises(ValueError, match="zero weight"):
        Empirical(records, [-math.inf, math.nan])
    assert Empirical(records, metadata={"rate": np.float64(0.5)}).metadata == {"rate": 0.5}


def test_repr_counts_records_ess_and_chains():
    posterior = Empirical(dict_records("x", np.zeros(8)), chain=np.arange(8) % 2)
    assert repr(posterior) == "Empirical(8 records, ESS 8.0, 2 chains)"


def test_values_of_many_dict_records_are_fast():
    records = [{"x": float(i), "t": torch.tensor(float(i))} for i in range(100_000)]
    posterior = Empirical(records)
    start = time.perf_counter()
    x, t = posterior.values("x"), posterior.values("t")
    assert time.perf_counter() - start < 2.0
    np.testing.assert_array_equal(x, t)
