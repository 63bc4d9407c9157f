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

from collections.abc import Callable, Mapping
from typing import Any

import pyro
import pyro.distributions
import torch
from pyro.distributions.torch_distribution import TorchDistributionMixin
from pyro.poutine.messenger import Messenger

from ppx.controllers import Controller
from ppx.model import Model
from ppx.primitives import observe as ppx_observe
from ppx.primitives import sample as ppx_sample
from ppx.protocol.codec import distribution_arguments, distribution_kind
from ppx.recorder import Recorder
from ppx.server import serve

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
        self, controller: Controller | None = None, observe: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(None, observe)
        self.controller = _PyroController(self)
        self._sites: set[str] = set()

    def site_name(self, address: str, name: str | None) -> str:
        """The Pyro site name of a draw: its name on first use, else its address."""
        site = name if name is not None and name not in self._sites else address
        self._sites.add(site)
        return site

    def observe(self, base, name, distribution, value) -> None:  # noqa: ANN001 - as in Recorder
        super().observe(base, name, distribution, value)
        draw = self.trace.draws[-1]
        if draw.observed and distribution is not None:
            site = self.site_name(draw.address, name)
            pyro.sample(site, as_pyro_distribution(distribution), obs=draw.value)


def as_pyro_model(model: Model) -> Callable[..., Any]:
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

    def pyro_model(observe: Mapping[str, Any] | None = None) -> Any:
        return model.record(PyroRecorder(observe=observe)).result

    pyro_model.__name__ = f"pyro_{model.name}"
    return pyro_model


class PPXMessenger(Messenger):
    """Routes a Pyro model's sample sites to ``ppx.sample`` / ``ppx.observe``."""

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if msg["is_observed"]:
            ppx_observe(msg["fn"], msg["value"], name=msg["name"])
        else:
            msg["value"] = ppx_sample(msg["fn"], name=msg["name"])


def serve_pyro(
    pyro_model: Callable[[], Any], address: str, *, model_name: str | None = None, **kwargs: Any
) -> None:
    """Serve a Pyro model (no arguments) as a PPX simulator at ``address``.

    Its distributions must be ones PPX carries (plain ``dist.Normal`` etc., not
    ``.to_event``/``.expand`` wrappers). ``kwargs`` go to :func:`ppx.serve`.
    """

    def simulator() -> Any:
        with PPXMessenger():
            return pyro_model()

    serve(simulator, address, model_name=model_name or pyro_model.__name__, **kwargs)
