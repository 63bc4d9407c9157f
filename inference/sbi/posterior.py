"""Amortized posteriors: query ``p(theta | x)`` for any observation, save and load them.

An :class:`AmortizedPosterior` wraps a trained sbi posterior with what it was
trained on: the simulator's name, the addresses and shapes of its parameters
and data, the prior and the method. Queries check the observation's shape
against the data layout. NPE posteriors sample directly (one pass of the
flow); NLE and NRE posteriors sample by sbi's vectorised slice sampler
(MCMC over many chains at once), which costs a few thousand network
evaluations per chain: seconds, not milliseconds, per query.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, TypeGuard

import numpy as np
import torch

from ppx.inference.sbi.layout import Layout, Observation
from ppx.inference.sbi.sampling import sample_direct
from ppx.provenance import KEY, Provenance, collect, from_checkpoint

if TYPE_CHECKING:
    from typing import TypeAlias

    from sbi.inference.posteriors.direct_posterior import DirectPosterior
    from sbi.inference.posteriors.mcmc_posterior import MCMCPosterior

    #: What sbi builds: a direct posterior (NPE) or an MCMC one (NLE, NRE).
    SBIPosterior: TypeAlias = DirectPosterior | MCMCPosterior

__all__ = ["FORMAT", "AmortizedPosterior", "TrainingInfo", "load_posterior"]

FORMAT = "ppx.sbi.posterior"
VERSION = 1


class _Training(TypedDict):
    sbi_version: str
    num_simulations: int
    train: dict[str, int | float | str | bool]
    epochs: list[int]
    method_class: str


class TrainingInfo(_Training, total=False):
    """How a posterior was trained.

    Attributes:
        sbi_version: sbi's version.
        num_simulations: simulations trained on (all rounds).
        train: the scalar keywords given to sbi's ``.train()``.
        epochs: epochs trained, per round.
        method_class: sbi's trainer class (``NPE_C``, ``NLE_A``...).
        rounds: rounds of sequential inference.
        x_o: the observation a sequential posterior is tuned to.
    """

    rounds: int
    x_o: list[float]


def _no_info() -> TrainingInfo:
    return TrainingInfo(sbi_version="", num_simulations=0, train={}, epochs=[], method_class="")


@dataclass
class AmortizedPosterior:
    """A trained neural posterior and what it was trained on.

    Attributes:
        posterior: the sbi posterior (``DirectPosterior`` for NPE, ``MCMCPosterior``
            for NLE and NRE).
        layout: the simulator's name, parameter and data blocks.
        prior: the prior over flat ``theta``.
        method: ``"NPE"``, ``"NLE"`` or ``"NRE"``.
        info: more facts (sbi version, number of simulations, rounds, epochs...).
        provenance: what trained it (seed, simulator or simulation store, versions).

    Example:
        >>> posterior = ppx.inference.sbi.train("sims.h5", method="NPE")
        >>> samples = posterior.sample(x_obs, 10_000)
        >>> posterior.save("posterior.pt")
        >>> ppx.inference.load_posterior("posterior.pt").sample(x_obs, 10, seed=1)
    """

    posterior: SBIPosterior
    layout: Layout
    prior: torch.distributions.Distribution
    method: str
    info: TrainingInfo = field(default_factory=_no_info)
    provenance: Provenance | None = None

    def sample(
        self,
        x_obs: Observation,
        n: int = 1000,
        *,
        seed: int | None = None,
        progress: bool = False,
        sampler: str = "auto",
    ) -> torch.Tensor:
        """``n`` draws of flat ``theta`` from ``p(theta | x_obs)``, shape ``[n, theta_dim]``.

        Arguments:
            x_obs: the observation (see :meth:`Layout.observation`).
            n: number of draws.
            seed: seed torch and numpy for this query only (same seed, same draws).
            progress: show sbi's progress bars (sbi's sampler only).
            sampler: ``"auto"``: NPE posteriors draw directly
                (:func:`~ppx.inference.sbi.sampling.sample_direct`), NLE and NRE
                ones by sbi's MCMC; ``"sbi"``: sbi's ``posterior.sample`` always
                (the same distribution, other random numbers, slower for NPE).

        Raises:
            ValueError: ``x_obs`` does not have the data's shape, or an unknown ``sampler``.
        """
        if sampler not in ("auto", "sbi"):
            raise ValueError(f"unknown sampler {sampler!r}: use 'auto' or 'sbi'")
        x = self.layout.observation(x_obs).unsqueeze(0)
        with _seeded(seed):
            if sampler == "auto" and self.method == "NPE" and _is_direct(self.posterior):
                samples = sample_direct(self.posterior, x, n)
            else:
                samples = self.posterior.sample((n,), x=x, show_progress_bars=progress)
        return samples.detach().cpu()

    def log_prob(self, theta: torch.Tensor, x_obs: Observation) -> torch.Tensor:
        """``log p(theta | x_obs)`` of each row of ``theta`` (``[n, theta_dim]`` or one vector).

        For NLE and NRE the value is unnormalised (the normaliser does not depend
        on ``theta``).
        """
        x = self.layout.observation(x_obs).unsqueeze(0)
        theta = torch.as_tensor(theta, dtype=torch.float32).reshape(-1, self.layout.theta_dim)
        return self.posterior.log_prob(theta, x=x).detach().cpu()

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Draws ``[n, theta_dim]`` split per parameter key, each ``[n, *shape]``."""
        parts, start = {}, 0
        for block in self.layout.parameters:
            parts[block.key] = theta[:, start : start + block.size].reshape(-1, *block.shape)
            start += block.size
        return parts

    def save(self, path: str | Path) -> Path:
        """Write the posterior and its record to ``path`` (a torch pickle)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "format": FORMAT,
            "version": VERSION,
            "posterior": self.posterior,
            "layout": self.layout.to_json(),
            "prior": self.prior,
            "method": self.method,
            "info": self.info,
            KEY: (self.provenance or collect(simulator=self.layout.simulator)).to_dict(),
        }
        torch.save(record, path)
        return path

    def __repr__(self) -> str:
        names = ", ".join(f"{b.key}{list(b.shape)}" for b in self.layout.parameters)
        data = ", ".join(f"{b.key}{list(b.shape)}" for b in self.layout.data)
        return f"AmortizedPosterior({self.method} of {self.layout.simulator!r}: {names} | {data})"


def load_posterior(path: str | Path, device: str = "cpu") -> AmortizedPosterior:
    """Load a posterior written by :meth:`AmortizedPosterior.save`.

    The file is a pickle: load only files you trust.

    Arguments:
        path: the file.
        device: where to put the network (``"cpu"`` by default).

    Raises:
        ValueError: the file is not a PPX posterior.
    """
    record = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path} is not a PPX posterior (saved by AmortizedPosterior.save)")
    posterior = record["posterior"]
    if str(getattr(posterior, "_device", device)) != device:  # trained on another device
        posterior.to(device)
    return AmortizedPosterior(
        posterior,
        Layout.from_json(record["layout"]),
        record["prior"],
        record["method"],
        record["info"],
        from_checkpoint(record, str(path)),
    )


def _is_direct(posterior: SBIPosterior) -> TypeGuard[DirectPosterior]:
    from sbi.inference.posteriors.direct_posterior import DirectPosterior

    return isinstance(posterior, DirectPosterior)


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    if seed is None:
        yield
        return
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)
