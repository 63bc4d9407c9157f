"""Torch thread counts per process and per Dask worker (ppx.inference.threads)."""

from __future__ import annotations

import pytest
import torch

from ppx.inference import threads
from ppx.inference.cluster import local_options, open_client


@pytest.mark.parametrize(
    ("cores", "processes", "expected"),
    [(1, 1, 1), (2, 1, 1), (4, 1, 2), (8, 1, 4), (64, 1, 4), (16, 4, 2), (8, 4, 1)],
)
def test_default_threads_leave_room_on_shared_cores(cores, processes, expected):
    assert threads.default_threads(cores, processes) == expected


def test_an_explicit_count_wins_then_the_users_environment(monkeypatch):
    monkeypatch.setattr(threads, "_USER_ENV", "")
    assert threads.chosen_threads(3) == 3
    assert threads.chosen_threads() == threads.default_threads()
    assert threads.worker_threads() == 1
    monkeypatch.setattr(threads, "_USER_ENV", "6")
    assert threads.chosen_threads() == 6 and threads.chosen_threads(2) == 2
    assert threads.worker_threads() == 6
    with pytest.raises(ValueError, match="positive"):
        threads.chosen_threads(0)


def test_torch_threads_restores_the_previous_count():
    before = torch.get_num_threads()
    with threads.torch_threads(1) as count:
        assert count == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_local_dask_workers_run_torch_on_one_thread(monkeypatch):
    monkeypatch.setattr(threads, "_USER_ENV", "")
    assert local_options()["env"] == {"OMP_NUM_THREADS": "1"}
    with open_client(n_workers=1) as client:
        counts = client.run(torch.get_num_threads)
    assert list(counts.values()) == [1]
