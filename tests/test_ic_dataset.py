"""Trace datasets of inference compilation: records, HDF5 parts, resumable generation, batches."""

from __future__ import annotations

import math
import pickle
import shutil
import sys
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import distributions as D

import ppx
from ppx.inference.ic.dataset import (
    TraceDataset,
    TraceRecord,
    TraceTypeSampler,
    record_from_trace,
    trace_type_of,
)
from ppx.inference.ic.generate import TraceWriter, generate_dataset
from ppx.simulators import branching, gaussian


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def every_kind() -> torch.Tensor:
    """Draws of many kinds and shapes, and a vector observation with a value."""
    k = ppx.sample(D.Categorical(torch.tensor([0.2, 0.3, 0.5])), name="k")
    ppx.sample(D.MultivariateNormal(torch.zeros(2), torch.tensor([[2.0, 0.5], [0.5, 1.0]])))
    ppx.sample(D.Normal(torch.zeros(3), torch.tensor([1.0, 2.0, 3.0])), name="vector")
    ppx.sample(D.Bernoulli(torch.tensor(0.3)), name="coin")
    ppx.sample(D.Gamma(torch.tensor(2.0), torch.tensor(3.0)), name="gamma")
    ppx.sample(D.Uniform(0.0, 1.0), name="hidden", control=False)
    ppx.observe(D.Normal(torch.zeros(3), 1.0), torch.tensor([1.0, 2.0, 3.0]), name="given")
    ppx.observe(D.Normal(k.float(), 1.0), name="drawn")
    return k


def records(model: ppx.Model, n: int, names: list[str]) -> list[TraceRecord]:
    return [record_from_trace(model.run(), names) for _ in range(n)]


# -- records ------------------------------------------------------------------------------
def test_record_of_a_trace():
    record = record_from_trace(ppx.LocalModel(every_kind).run(), ["given", "drawn"])
    assert record.kinds == ("Categorical", "MultivariateNormal", "Normal", "Bernoulli", "Gamma")
    assert record.addresses[0] == "k__Categorical(len_probs:3)__1"
    assert record.addresses[2:] == ("vector__Normal__1", "coin__Bernoulli__1", "gamma__Gamma__1")
    assert [v.shape for v in record.values] == [(), (2,), (3,), (), ()]
    assert all(v.dtype == np.float64 for v in record.values)
    np.testing.assert_allclose(record.parameters[0][0], [0.2, 0.3, 0.5], rtol=1e-6)
    mvn_mean, mvn_covariance = record.parameters[1]
    np.testing.assert_allclose(mvn_covariance, [[2.0, 0.5], [0.5, 1.0]], rtol=1e-6)
    assert mvn_mean.shape == (2,) and record.parameters[2][1].shape == (3,)
    assert record.observations["given"].tolist() == [1.0, 2.0, 3.0]  # the simulator's value
    assert record.observations["drawn"].shape == ()  # sampled: the simulator gave none
    assert record.trace_type == trace_type_of(record.addresses)


def test_observations_by_address_or_base():
    trace = ppx.LocalModel(gaussian.model).run()
    record = record_from_trace(trace, ["obs0__Normal__1", "obs1"])
    assert set(record.observations) == {"obs0__Normal__1", "obs1"}


def test_a_missing_observation_is_named_with_those_the_trace_has():
    with pytest.raises(ValueError, match=r"\['obs7'\].*\['obs0', 'obs1'\]"):
        record_from_trace(ppx.LocalModel(gaussian.model).run(), ["obs0", "obs7"])


def test_records_compare_by_value_and_check_their_lengths():
    record = record_from_trace(ppx.LocalModel(gaussian.model).run(), ["obs0"])
    same = pickle.loads(pickle.dumps(record))
    assert same == record and same is not record
    other = TraceRecord(record.addresses, record.kinds, record.parameters,
                        (record.values[0] + 1,), record.observations)  # fmt: skip
    assert other != record
    with pytest.raises(ValueError, match="1 addresses, 0 kinds"):
        TraceRecord(record.addresses, (), record.parameters, record.values, {})


def test_trace_type_is_a_stable_63_bit_hash():
    assert trace_type_of(["a", "b"]) == trace_type_of(("a", "b"))
    assert len({trace_type_of(s) for s in [(), ("",), ("a",), ("a", ""), ("ab",)]}) == 5
    assert 0 <= trace_type_of(["r__Poisson__1"]) < 2**63
    assert trace_type_of(["r__Poisson__1"]) == 4147173327048333476  # the same in every process


# -- round trips --------------------------------------------------------------------------
@pytest.mark.parametrize("shard_size", [7, 10_000])
def test_records_round_trip_exactly(tmp_path: Path, shard_size: int):
    model = ppx.LocalModel(every_kind)
    written = records(model, 40, ["given", "drawn"])
    with TraceWriter(tmp_path / "d", "every_kind", ["given", "drawn"], shard_size=shard_size) as w:
        for record in written[:15]:
            w.append(record)
        w.flush()
        w.extend(written[15:])
    data = TraceDataset(tmp_path / "d")
    assert len(data) == 40 and [data[i] for i in range(40)] == written
    assert data[-1] == written[-1]
    assert data.observation_shapes == {"given": (3,), "drawn": ()}
    assert data.simulator == "every_kind" and data.observe_names == ["given", "drawn"]
    parts = sorted(p.name for p in (tmp_path / "d").glob("part-*"))
    expected = [(s, min(s + shard_size, 40)) for s in range(0, 40, shard_size)]
    assert parts == [f"part-{s:012d}-{e:012d}.h5" for s, e in expected]  # one part a shard
    with pytest.raises(IndexError, match="out of range"):
        data[40]


def test_appending_to_an_existing_dataset(tmp_path: Path):
    model = ppx.LocalModel(branching.model)
    written = records(model, 30, ["obs"])
    with TraceWriter(tmp_path, "branching", ["obs"], shard_size=20) as writer:
        writer.extend(written[:12])
    with TraceWriter(tmp_path, "branching", ["obs"], shard_size=20) as writer:
        assert writer.committed == 12
        writer.extend(written[12:])
    assert list(TraceDataset(tmp_path)) == written
    assert len(list(tmp_path.glob("part-*"))) == 2  # [0, 20) merged; [20, 30) at close


def test_a_dataset_survives_pickling_and_dataloader_workers(tmp_path: Path):
    data = generate_dataset(ppx.LocalModel(branching.model), tmp_path, 60, ["obs"])
    assert data[5] == data[5]  # opens the files here
    copy = pickle.loads(pickle.dumps(data))
    assert [copy[i] for i in range(60)] == [data[i] for i in range(60)]
    sampler = TraceTypeSampler(data, 8, seed=3)
    loader = torch.utils.data.DataLoader(
        data, batch_sampler=sampler, collate_fn=list, num_workers=1
    )
    batches = list(loader)
    assert sorted(len(b) for b in batches) == sorted(len(b) for b in TraceTypeSampler(data, 8))
    assert all(len({record.trace_type for record in batch}) == 1 for batch in batches)
    assert sum(map(len, batches)) == 60


def test_an_empty_dataset(tmp_path: Path):
    TraceWriter(tmp_path / "empty", "sim", ["obs"]).close()
    data = TraceDataset(tmp_path / "empty")
    assert len(data) == 0 and data.trace_types() == {} and data.observation_shapes == {}
    assert data.summary() == "0 traces of sim"
    assert list(TraceTypeSampler(data, 4)) == [] and len(TraceTypeSampler(data, 4)) == 0


# -- the prior predictive -----------------------------------------------------------------
def test_unobserved_observations_are_drawn_from_their_distribution(tmp_path: Path):
    n = 2000
    data = generate_dataset(ppx.LocalModel(gaussian.model), tmp_path, n, ["obs0", "obs1"])
    mu = np.array([float(data[i].values[0]) for i in range(n)])
    obs0 = np.array([float(data[i].observations["obs0"]) for i in range(n)])
    obs1 = np.array([float(data[i].observations["obs1"]) for i in range(n)])
    prior_mean, prior_std = gaussian.prior_marginals()["obs0"]
    assert prior_std == pytest.approx(math.sqrt(5 + 2))
    # 4 standard errors: the mean's is std / sqrt(n), the std's about std / sqrt(2 n).
    assert abs(obs0.mean() - prior_mean) < 4 * prior_std / math.sqrt(n)
    assert abs(obs0.std(ddof=1) - prior_std) < 4 * prior_std / math.sqrt(2 * n)
    # given mu, obs_i ~ Normal(mu, sqrt(2)), independently of each other
    noise = obs0 - mu
    assert abs(noise.mean()) < 4 * math.sqrt(2 / n)
    assert abs(noise.std(ddof=1) - math.sqrt(2)) < 4 * math.sqrt(2) / math.sqrt(2 * n)
    assert abs(np.corrcoef(noise, obs1 - mu)[0, 1]) < 4 / math.sqrt(n)


# -- trace types and batches --------------------------------------------------------------
@pytest.fixture
def branching_data(tmp_path: Path) -> TraceDataset:
    model = ppx.LocalModel(branching.model)
    return generate_dataset(model, tmp_path / "b", 1000, ["obs"], chunk_size=300, shard_size=400)


def test_trace_types_match_the_records(branching_data: TraceDataset):
    data = branching_data
    addresses = [data[i].addresses for i in range(len(data))]
    by_addresses = Counter(addresses)
    assert len(by_addresses) == 6  # r = 0 .. 4 give 0 .. 4 draws z_k; r > 4 gives u
    assert data.trace_types() == {trace_type_of(a): k for a, k in by_addresses.most_common()}
    for sequence in by_addresses:
        expected = [i for i, a in enumerate(addresses) if a == sequence]
        assert data.indices_of_type(trace_type_of(sequence)).tolist() == expected
    assert data.indices_of_type(12345).tolist() == []
    assert set(data.addresses()) == {a for sequence in by_addresses for a in sequence}
    (common, count), *_ = by_addresses.most_common()
    assert data.summary() == (
        f"1000 traces of {data.simulator}, 6 trace types; most common: {count} traces of "
        f"{len(common)} draws ({', '.join(common)})"
    )


def test_batches_share_a_trace_type_and_cover_every_index_once(branching_data: TraceDataset):
    data = branching_data
    types = data.trace_type_column()
    sampler = TraceTypeSampler(data, 32, seed=5)
    epochs = [list(sampler), list(sampler)]
    for batches in epochs:
        assert len(batches) == len(sampler)
        assert all(len(set(types[batch])) == 1 and 0 < len(batch) <= 32 for batch in batches)
        assert sorted(i for batch in batches for i in batch) == list(range(len(data)))
    assert epochs[0] != epochs[1]  # reshuffled each epoch
    again = TraceTypeSampler(data, 32, seed=5)
    assert list(again) == epochs[0] and list(again) == epochs[1]  # reproducible from the seed
    again.set_epoch(0)
    assert list(again) == epochs[0]
    assert list(TraceTypeSampler(data, 32, seed=6)) != epochs[0]


def test_sampler_without_shuffling_and_dropping_last(branching_data: TraceDataset):
    data = branching_data
    counts = data.trace_types()
    ordered = list(TraceTypeSampler(data, 50, shuffle=False))
    flat = [i for batch in ordered for i in batch]
    first_seen = list(dict.fromkeys(data.trace_type_column().tolist()))
    assert flat == [i for t in first_seen for i in data.indices_of_type(t).tolist()]
    dropped = list(TraceTypeSampler(data, 50, drop_last=True))
    assert all(len(batch) == 50 for batch in dropped)
    assert len(dropped) == sum(k // 50 for k in counts.values())
    with pytest.raises(ValueError, match="batch_size"):
        TraceTypeSampler(data, 0)


# -- resumable generation -----------------------------------------------------------------
def test_an_interrupted_generation_resumes_to_the_same_dataset(tmp_path: Path):
    model = ppx.LocalModel(branching.model)
    whole = generate_dataset(model, tmp_path / "whole", 1000, ["obs"], chunk_size=250, seed=7)
    generate_dataset(model, tmp_path / "parts", 600, ["obs"], chunk_size=250, seed=7)
    assert len(TraceDataset(tmp_path / "parts")) == 600
    resumed = generate_dataset(model, tmp_path / "parts", 1000, ["obs"], chunk_size=300, seed=7)
    assert len(resumed) == 1000
    assert [resumed[i] for i in range(1000)] == [whole[i] for i in range(1000)]
    other = generate_dataset(model, tmp_path / "other", 50, ["obs"], seed=8)
    assert [other[i] for i in range(50)] != [whole[i] for i in range(50)]


def test_a_crashed_chunk_keeps_the_chunks_before_it(tmp_path: Path):
    runs = 0

    def fails_once() -> torch.Tensor:
        nonlocal runs
        runs += 1
        if runs == 130:
            raise RuntimeError("the simulator fell over")
        return branching.model()

    flaky = ppx.LocalModel(fails_once, name="branching")
    with pytest.raises(ppx.SimulatorError, match="fell over"):
        generate_dataset(flaky, tmp_path / "d", 200, ["obs"], chunk_size=50)
    assert len(TraceDataset(tmp_path / "d")) == 100
    resumed = generate_dataset(flaky, tmp_path / "d", 200, ["obs"], chunk_size=50)
    model = ppx.LocalModel(branching.model, name="branching")
    whole = generate_dataset(model, tmp_path / "whole", 200, ["obs"], chunk_size=50)
    assert [resumed[i] for i in range(200)] == [whole[i] for i in range(200)]


def test_generation_leaves_the_callers_random_state_alone(tmp_path: Path):
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    generate_dataset(ppx.LocalModel(gaussian.model), tmp_path, 20, ["obs0"])
    assert torch.equal(torch.rand(3), expected)


def test_a_served_simulator(tmp_path: Path):
    argv = [sys.executable, "-m", "ppx.simulators.gaussian"]
    with ppx.RemoteModel.spawn(argv) as model:
        data = generate_dataset(model, tmp_path, 40, ["obs0", "obs1"], chunk_size=15)
        written = records(model, 5, ["obs0", "obs1"])
        simulator = model.name
    assert len(data) == 40 and data.simulator == simulator
    assert data.trace_types() == {trace_type_of(["mu__Normal__1"]): 40}
    assert len({float(data[i].observations["obs0"]) for i in range(40)}) == 40
    with TraceWriter(tmp_path / "more", simulator, ["obs0", "obs1"]) as writer:
        writer.extend(written)
    assert list(TraceDataset(tmp_path / "more")) == written


@pytest.mark.slow  # a 2-worker cluster: 3 to 8 s on a loaded machine
def test_dask_workers_make_the_same_dataset(tmp_path: Path):
    from ppx.inference.cluster import open_client

    model = ppx.LocalModel(branching.model)
    here = generate_dataset(model, tmp_path / "here", 300, ["obs"], chunk_size=40, seed=3)
    with open_client(n_workers=2) as client:
        there = generate_dataset(
            model, tmp_path / "there", 300, ["obs"], chunk_size=40, seed=3, client=client
        )
    assert [there[i] for i in range(300)] == [here[i] for i in range(300)]


# -- refusals and damage ------------------------------------------------------------------
def test_a_dataset_of_another_simulator_observations_or_seed_is_refused(tmp_path: Path):
    model = ppx.LocalModel(gaussian.model, name="gaussian")
    generate_dataset(model, tmp_path, 10, ["obs0", "obs1"], seed=1)
    with pytest.raises(ValueError, match="simulator 'gaussian', not 'other'"):
        TraceWriter(tmp_path, "other", ["obs0", "obs1"])
    with pytest.raises(
        ValueError, match=r"observations \['obs0', 'obs1'\], not \['obs1', 'obs0'\]"
    ):
        TraceWriter(tmp_path, "gaussian", ["obs1", "obs0"])
    with pytest.raises(ValueError, match="'seed': 1.*'seed': 2"):
        generate_dataset(model, tmp_path, 20, ["obs0", "obs1"], seed=2)
    (tmp_path.parent / "loose").mkdir()
    (tmp_path.parent / "loose" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not a PPX trace dataset"):
        TraceWriter(tmp_path.parent / "loose", "gaussian", ["obs0"])


def test_a_wrong_observe_name_stops_generation_with_the_simulator_named(tmp_path: Path):
    model = ppx.LocalModel(gaussian.model, name="gaussian")
    with pytest.raises(ValueError, match=r"simulator 'gaussian'.*\['obs7'\].*\['obs0', 'obs1'\]"):
        generate_dataset(model, tmp_path, 10, ["obs7"])
    data = generate_dataset(model, tmp_path, 10, ["obs0"])  # the empty dataset is reset
    assert len(data) == 10 and data.observe_names == ["obs0"]
    assert data.addresses() == ["mu__Normal__1"]


def test_records_that_do_not_fit_are_refused(tmp_path: Path):
    model = ppx.LocalModel(gaussian.model)
    record = record_from_trace(model.run(), ["obs0"])
    with TraceWriter(tmp_path, "gaussian", ["obs0"]) as writer:
        writer.append(record)
        with pytest.raises(ValueError, match=r"observations \['obs0', 'obs1'\] cannot go"):
            writer.append(record_from_trace(model.run(), ["obs0", "obs1"]))
        wide = {"obs0": np.zeros(2)}
        with pytest.raises(ValueError, match=r"'obs0' of a record has shape \(2,\).*shape \(\)"):
            writer.append(TraceRecord(record.addresses, record.kinds, record.parameters,
                                      record.values, wide))  # fmt: skip
    with pytest.raises(ValueError, match="closed"):
        writer.append(record)
    with pytest.raises(ValueError, match="shard_size"):
        TraceWriter(tmp_path / "x", "gaussian", ["obs0"], shard_size=0)


def test_missing_folders_and_non_datasets_are_named(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        TraceDataset(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"is not a PPX trace dataset \(no dataset.json"):
        TraceDataset(tmp_path)
    (tmp_path / "dataset.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="dataset.json.*format is 'something else'"):
        TraceDataset(tmp_path)


def test_a_truncated_part_is_named(tmp_path: Path):
    model = ppx.LocalModel(branching.model)
    generate_dataset(model, tmp_path, 100, ["obs"], chunk_size=50, shard_size=50)
    part = tmp_path / "part-000000000050-000000000100.h5"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"{part.name}.* corrupt or truncated"):
        TraceDataset(tmp_path)


def test_damaged_data_is_named_when_read(tmp_path: Path):
    model = ppx.LocalModel(branching.model)
    generate_dataset(model, tmp_path, 200, ["obs"])
    part = tmp_path / "part-000000000000-000000000200.h5"
    with h5py.File(part, "r") as file:
        chunk = file["floats"].id.get_chunk_info(0)  # where the first traces' values lie
    content = bytearray(part.read_bytes())
    content[chunk.byte_offset : chunk.byte_offset + chunk.size] = bytes(chunk.size)
    part.write_bytes(bytes(content))
    data = TraceDataset(tmp_path)  # the index is intact
    with pytest.raises(ValueError, match=f"cannot read trace 0 from .*{part.name}"):
        data[0]


def test_a_gap_between_parts_is_named(tmp_path: Path):
    model = ppx.LocalModel(branching.model)
    generate_dataset(model, tmp_path, 90, ["obs"], chunk_size=30, shard_size=30)
    (tmp_path / "part-000000000030-000000000060.h5").unlink()
    with pytest.raises(ValueError, match="part-000000000060-000000000090.h5 leaves a gap"):
        TraceDataset(tmp_path)


def test_what_a_crash_leaves_behind_is_ignored_then_removed(tmp_path: Path):
    model = ppx.LocalModel(branching.model)
    written = records(model, 30, ["obs"])
    folder = tmp_path / "d"
    writer = TraceWriter(folder, "branching", ["obs"], shard_size=100)
    writer.extend(written[:10])
    writer.extend(written[10:30])
    segments = sorted(folder.glob("part-*"))
    saved = tmp_path / "saved"
    saved.mkdir()
    for segment in segments:  # a crash after the merged part was renamed into place
        shutil.copy(segment, saved / segment.name)
    writer.close()
    for segment in segments:
        shutil.copy(saved / segment.name, segment)
    (folder / "part-000000000030-000000000040.h5.tmp").write_bytes(b"half a part")
    assert len(list(folder.iterdir())) == 5
    assert list(TraceDataset(folder)) == written
    TraceWriter(folder, "branching", ["obs"]).close()
    assert sorted(p.name for p in folder.iterdir()) == [
        "dataset.json",
        "part-000000000000-000000000030.h5",
    ]
    assert list(TraceDataset(folder)) == written
