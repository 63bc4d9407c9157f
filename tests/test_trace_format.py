"""One format of prior traces: ``ppx prior --out`` writes a trace dataset, Empirical reads it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import ppx
from ppx.cli.main import app
from ppx.inference import Empirical
from ppx.inference.ic import (
    TraceDataset,
    TraceRecord,
    TraceWriter,
    generate_dataset,
    record_from_trace,
)
from ppx.inference.ic.records import trace_type_of
from ppx.simulators import branching

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def invoke(*args: str) -> str:
    """Run ``ppx ARGS`` in this process; return its output (the command must succeed)."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_prior_out_is_a_dataset_that_empirical_plot_and_train_read(tmp_path: Path):
    folder = tmp_path / "prior"
    output = invoke("prior", "--simulator", "gaussian", "-n", "200", "--out", str(folder))
    assert f"wrote 200 traces to {folder}; observations: obs0, obs1" in output
    data = TraceDataset(folder)
    assert len(data) == 200 and data.observe_names == ["obs0", "obs1"]
    assert data[0].names == ("mu",)
    prior = Empirical.load(folder)
    assert len(prior) == 200 and prior.keys() == ["mu"]
    assert not prior.is_weighted and prior.num_chains == 1
    assert prior.metadata == {
        "engine": "prior",
        "model": "gaussian",
        "num_traces": 200,
        "origin": {"generator": "prior", "seed": 0},
    }
    # the prior of mu is Normal(1, sqrt(5)): its mean within 4 Monte Carlo standard errors
    assert abs(float(prior.mean("mu")) - 1.0) < 4 * math.sqrt(5 / 200)
    invoke("plot", str(folder), "--out", str(tmp_path / "plots"))
    assert (tmp_path / "plots" / "prior_marginals.png").read_bytes()[:8] == PNG
    net = tmp_path / "net.pt"
    invoke("train", "--dataset", str(folder), "-n", "64", "--batch-size", "32", "--out", str(net))
    assert net.exists()


def test_prior_out_records_the_observations_asked_for_and_extends(tmp_path: Path):
    folder = tmp_path / "prior"
    common = ["prior", "--simulator", "gaussian", "--out", str(folder), "--observe-name", "obs1"]
    invoke(*common, "-n", "10")
    first = TraceDataset(folder)[9]
    output = invoke(*common, "-n", "30")  # run again, larger: only the missing traces
    assert "30 traces in" in output
    data = TraceDataset(folder)
    assert len(data) == 30 and data.observe_names == ["obs1"] and data[9] == first


def test_prior_out_refuses_an_h5_file_name(tmp_path: Path):
    args = ["prior", "--simulator", "gaussian", "-n", "5", "--out", str(tmp_path / "prior.h5")]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "writes a trace dataset, a folder" in result.output
    assert not (tmp_path / "prior.h5").exists()


def named_and_tagged() -> None:
    x = ppx.sample(torch.distributions.Normal(0.0, 1.0), name="x")
    ppx.sample(torch.distributions.Normal(x, 1.0))  # unnamed: keyed by address
    for _ in range(2):  # a repeated name: the second draw is keyed by its address
        ppx.sample(torch.distributions.Normal(x, 2.0), name="y")
    with ppx.scope("event"):
        ppx.sample(torch.distributions.Normal(torch.zeros(2), 1.0), name="v")
    ppx.tag(2 * x, name="twice")
    ppx.tag(torch.arange(3.0) * x, name="vector")
    ppx.tag("not a number", name="label")  # not kept in a dataset
    ppx.observe(torch.distributions.Normal(x, 1.0), name="obs")


def test_records_are_keyed_as_the_records_of_traces(tmp_path: Path):
    traces = ppx.LocalModel(named_and_tagged).prior(20)
    records = [record_from_trace(trace, ["obs"]) for trace in traces]
    with TraceWriter(tmp_path / "d", "named_and_tagged", ["obs"], shard_size=7) as writer:
        writer.extend(records)
    assert [TraceDataset(tmp_path / "d")[i] for i in range(20)] == records  # names, tags too
    loaded, expected = Empirical.load(tmp_path / "d"), Empirical(traces)
    assert "label" not in loaded.keys()
    assert loaded.keys() == [key for key in expected.keys() if key != "label"]
    assert loaded.keys()[:2] == ["x", records[0].addresses[1]] and "y" in loaded.keys()
    for key in loaded.keys():
        np.testing.assert_array_equal(loaded.values(key), expected.values(key))


def test_a_generated_dataset_of_varying_draws_loads(tmp_path: Path):
    model = ppx.LocalModel(branching.model)
    data = generate_dataset(model, tmp_path / "d", 300, ["obs"], chunk_size=100, shard_size=128)
    prior = Empirical.load(tmp_path / "d")
    assert len(prior) == 300 and prior.keys() == ["r"]  # the only draw of every trace
    r = prior.values("r")
    np.testing.assert_array_equal(r, [data[i].values[0] for i in range(300)])
    assert abs(r.mean() - 4.0) < 4 * 2.0 / math.sqrt(300)  # Poisson(4): mean 4, sd 2
    assert all(("u" in record) == (record["r"] > 4) for record in prior.traces)


def write_version_1(folder: Path, mus: list[float]) -> None:
    """A dataset as PPX wrote it before draw names and tags (format version 1)."""
    folder.mkdir()
    metadata = {"format": "ppx.ic.traces", "version": 1, "simulator": "gaussian",
                "observe_names": ["obs0"], "observation_shapes": {"obs0": []},
                "origin": None}  # fmt: skip
    (folder / "dataset.json").write_text(json.dumps(metadata))
    n = len(mus)
    with h5py.File(folder / f"part-{0:012d}-{n:012d}.h5", "w") as file:
        file.attrs.update(format="ppx.ic.traces.part", version=1, start=0, count=n)
        file["addresses"] = np.array(["mu__Normal__1"], dtype=h5py.string_dtype())
        file["kinds"] = np.array(["Normal"], dtype=h5py.string_dtype())
        file["trace_type"] = np.full(n, trace_type_of(["mu__Normal__1"]), np.int64)
        file["ints_end"] = np.arange(1, n + 1, dtype=np.int64) * 6
        file["floats_end"] = np.arange(1, n + 1, dtype=np.int64) * 3
        file["ints"] = np.tile(np.array([0, 0, 3, 0, 0, 0], np.int32), n)  # value, loc, scale
        file["floats"] = np.array([[mu, 1.0, 5**0.5] for mu in mus]).reshape(-1)
        file["observations/0"] = np.array(mus) + 0.5


def test_parts_of_format_version_1_are_read_and_extended(tmp_path: Path):
    folder = tmp_path / "old"
    write_version_1(folder, [0.5, 1.5, 2.5])
    data = TraceDataset(folder)
    assert data[1].values[0] == 1.5 and data[1].names == (None,) and data[1].tags == ()
    assert Empirical.load(folder).keys() == ["mu__Normal__1"]  # unnamed: by address
    new = TraceRecord(("mu__Normal__1",), ("Normal",), data[0].parameters, (np.array(7.0),),
                      {"obs0": np.array(7.5)}, tags=(("t", np.ones(2)),))  # fmt: skip
    with TraceWriter(folder, "gaussian", ["obs0"], shard_size=4) as writer:
        writer.append(new)  # a version-2 part, then merged with the old one: the shard is full
    data = TraceDataset(folder)
    assert len(data) == 4 and len(list(folder.glob("part-*"))) == 1
    assert data[0].values[0] == 0.5 and data[3] == new
    assert json.loads((folder / "dataset.json").read_text())["version"] == 2
    assert Empirical.load(folder).values("mu__Normal__1").tolist() == [0.5, 1.5, 2.5, 7.0]


def test_a_part_of_a_newer_format_is_refused(tmp_path: Path):
    folder = tmp_path / "new"
    write_version_1(folder, [0.5])
    with h5py.File(next(folder.glob("part-*")), "a") as file:
        file.attrs["version"] = 99
    with pytest.raises(ValueError, match="format version 99.*upgrade PPX"):
        Empirical.load(folder)


def test_a_folder_that_is_no_dataset_is_named(tmp_path: Path):
    with pytest.raises(ValueError, match="not a PPX trace dataset"):
        Empirical.load(tmp_path)
    TraceWriter(tmp_path / "empty", "gaussian", ["obs0"]).close()
    with pytest.raises(ValueError, match="holds no trace"):
        Empirical.load(tmp_path / "empty")
