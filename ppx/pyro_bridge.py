"""Bridges to Pyro, both ways.

* :func:`as_pyro_model` turns any :class:`ppx.Model` (a remote C++ simulator
  included) into a Pyro model: every controlled draw becomes a ``pyro.sample``
  site and every observation an observed site, so ``poutine.trace``,
  ``poutine.condition`` and ``poutine.replay`` work on it.
* :func:`serve_pyro` serves a Pyro model as a PPX simulator: its sample sites
  become PPX draws at the site names.

Sites are named by the draw's name where given (first use in a run),
otherwise by the full PPX address. Uncontrolled draws (``control=False``) are
not sites: the engine cannot choose them, and as prior draws they cancel in
any importance weight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import cast

import pyro
import pyro.distributions
import torch
from numpy.typing import ArrayLike
from pyro.distributions.torch_distribution import TorchDistributionMixin
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import Message
from torch import Tensor

from ppx.engine.controllers import Controller
from ppx.engine.model import Model
from ppx.engine.recorder import Recorder
from ppx.protocol import distribution_arguments, distribution_kind
from ppx.simulator.primitives import observe as ppx_observe
from ppx.simulator.primitives import sample as ppx_sample
from ppx.simulator.server import serve

__all__ = ["PPXMessenger", "PyroRecorder", "as_pyro_distribution", "as_pyro_model", "serve_pyro"]


def as_pyro_distribution(
    distribution: torch.distributions.Distribution,
) -> TorchDistributionMixin:
    """The same distribution as a Pyro one (Pyro's sample sites need its API)."""
    if isinstance(distribution, TorchDistributionMixin):
        return distribution
    pyro_type = getattr(pyro.distributions, distribution_kind(distribution))
    return pyro_type(**distribution_arguments(distribution), validate_args=False)


class _PyroController:
    """Controller whose choice is whatever ``pyro.sample`` returns under the active poutines."""

    def __init__(self, recorder: PyroRecorder) -> None:
        self.recorder = recorder

    def __call__(
        self, address: str, name: str | None, distribution: torch.distributions.Distribution
    ) -> torch.Tensor:
        site = self.recorder.site_name(address, name)
        return pyro.sample(site, as_pyro_distribution(distribution))


class PyroRecorder(Recorder):
    """A recorder that mirrors each draw as a Pyro sample site."""

    def __init__(
        self, controller: Controller | None = None, observe: Mapping[str, ArrayLike] | None = None
    ) -> None:
        super().__init__(None, observe)
        self.controller = _PyroController(self)
        self._sites: set[str] = set()

    def site_name(self, address: str, name: str | None) -> str:
        """The Pyro site name of a draw: its name on first use, else its address."""
        site = name if name is not None and name not in self._sites else address
        self._sites.add(site)
        return site

    def observe(
        self,
        base: str,
        name: str | None,
        distribution: torch.distributions.Distribution | None,
        value: ArrayLike | None,
    ) -> None:
        super().observe(base, name, distribution, value)
        draw = self.trace.draws[-1]
        if draw.observed and distribution is not None:
            site = self.site_name(draw.address, name)
            pyro.sample(site, as_pyro_distribution(distribution), obs=draw.value)


def as_pyro_model(model: Model) -> Callable[..., Tensor | None]:
    """A Pyro model that runs ``model`` once per call.

    Arguments:
        model: any PPX model, local or remote.

    Returns:
        ``pyro_model(observe=None)``: runs the simulator, returns its result.

    Example:
        >>> pyro_model = as_pyro_model(ppx.RemoteModel("ipc:///tmp/gum"))
        >>> tr = poutine.trace(poutine.condition(pyro_model, data={"mu": 7.0})).get_trace(
        ...     observe={"obs0": 8.0, "obs1": 9.0})
    """

    def pyro_model(observe: Mapping[str, ArrayLike] | None = None) -> Tensor | None:
        return model.record(PyroRecorder(observe=observe)).result

    pyro_model.__name__ = f"pyro_{model.name}"
    return pyro_model


class PPXMessenger(Messenger):
    """Routes a Pyro model's sample sites to ``ppx.sample`` / ``ppx.observe``."""

    def _pyro_sample(self, msg: Message) -> None:
        distribution = cast(torch.distributions.Distribution, msg.get("fn"))
        name = msg.get("name")
        if msg.get("is_observed"):
            ppx_observe(distribution, msg.get("value"), name=name)
        else:
            msg["value"] = ppx_sample(distribution, name=name)


def serve_pyro(
    pyro_model: Callable[[], object],
    address: str,
    *,
    model_name: str | None = None,
    allow_remote: bool = False,
    stop: threading.Event | None = None,
) -> None:
    """Serve a Pyro model (no arguments) as a PPX simulator at ``address``.

    Its distributions must be ones PPX carries (plain ``dist.Normal`` etc., not
    ``.to_event``/``.expand`` wrappers). The keyword arguments are :func:`ppx.serve`'s.
    """

    def simulator() -> object:
        with PPXMessenger():
            return pyro_model()

    name = model_name or getattr(pyro_model, "__name__", "pyro_model")
    serve(simulator, address, model_name=name, allow_remote=allow_remote, stop=stop)
