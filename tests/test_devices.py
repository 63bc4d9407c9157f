"""Where the trainers run: ``device="auto"`` takes the GPU when present, estimators come back.

The CPU tests run everywhere; the CUDA test trains each set estimator on the GPU for a
few steps and queries it on the CPU (skipped where torch sees no GPU).
"""

from __future__ import annotations

import pytest
import torch

from ppx.inference.devices import on_device, resolve_device, training_on
from ppx.inference.sets import PAIRS, HierarchicalGaussian, SetNPE, SummedEstimator

TOY = HierarchicalGaussian()
CUDA = torch.cuda.is_available()


def test_auto_takes_the_gpu_only_when_present() -> None:
    assert resolve_device("auto") == ("cuda" if CUDA else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="'tpu' is not a torch device: use auto, cpu or cuda"):
        resolve_device("tpu")


@pytest.mark.skipif(CUDA, reason="checks the error where no GPU is present")
def test_asking_for_a_missing_gpu_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"device='cuda:1', but torch sees no CUDA GPU"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        SetNPE(1).fit(TOY.simulate_sets, n_range=(1, 4), steps=1, device="cuda", progress=False)


def test_training_on_returns_the_module_to_the_cpu_even_after_an_error() -> None:
    module = torch.nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="stop"), training_on(module, "auto") as device:
        assert module.weight.device.type == device.type
        raise RuntimeError("stop")
    assert module.weight.device.type == "cpu"


def test_on_device_moves_every_output() -> None:
    simulate = on_device(TOY.simulate_sets, torch.device("cpu"))
    assert simulate == TOY.simulate_sets  # nothing to move on the CPU
    theta, events = on_device(TOY.simulate_sets, torch.device("meta"))(4, 3)
    assert (theta.device.type, events.device.type) == ("meta", "meta")
    assert (theta.shape, events.shape) == ((4, 1), (4, 3, 1))
    npe = SetNPE(1).fit(TOY.simulate_sets, n_range=(1, 4), steps=2, device="cpu", progress=False)
    assert npe.info["device"] == "cpu"


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_set_estimators_train_on_the_gpu_and_answer_on_the_cpu() -> None:
    events = TOY.simulate_sets(1, 50)[1][0]
    options = {"steps": 20, "progress": False, "device": "cuda"}
    npe = SetNPE(1, network="transformer").fit(TOY.simulate_sets, n_range=(1, 50), **options)
    pairs = PAIRS(1).fit(TOY.simulate_sets, **options)
    pairs.finetune(TOY.simulate_sets, n_range=(1, 50), num_sets=200, **options)
    summed = SummedEstimator(1, TOY.prior).fit(TOY.simulate_sets, **options)
    for estimator in (npe, pairs):
        assert estimator.info.get("device", estimator.info.get("stage1_device")) == "cuda"
        assert estimator.sample(events, 10).device.type == "cpu"
    assert summed.info["device"] == "cuda"
    assert torch.isfinite(summed.log_likelihood(torch.zeros(3, 1), events)).all()
