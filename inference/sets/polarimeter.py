"""Per-event likelihoods linear in a polarisation: ``p(x | P) = f(x) (1 + P a(x))``.

A spin-1/2 particle's decay rate is linear in its spin density matrix, so for
a polarisation (or any asymmetry) ``P`` in ``[-1, 1]`` every observable ``x``
of the decay, however it is boosted, smeared or integrated over production,
has the density ``f(x) (1 + P a(x))`` with an analysing function
``|a(x)| <= 1``. Only ``a`` carries information on ``P``; ``f`` cancels in
the likelihood ratio. This is the "optimal observable" of tau polarisation
measurements (Davier, Duflot, Le Diberder & Rouge, Phys. Lett. B 306 (1993)
411): ``omega = a(x)`` summarises an event without loss.

:class:`LinearLikelihood` learns ``a`` from single simulated events with
``P ~ Uniform(-1, 1)``. Under that prior the posterior of one event is
``p(P | x) = (1 + P a(x)) / 2`` on ``[-1, 1]``, so a network
``a(x) = tanh(net(x))`` trained by maximum likelihood of ``P`` given ``x``
is a (constrained) neural posterior estimate whose one free function is the
analysing power. Summed over a set, ``sum_i log(1 + P a(x_i))`` is then the
exact form of the log-likelihood in ``P``: there is no flow whose per-event
bias adds up with ``N``, which is what keeps the intervals' coverage at
``N = 1000`` (a generic per-event flow,
:class:`~ppx.inference.sets.ratio.SummedEstimator`, loses it there).

Written here by hand: the network, its loss and the grid evaluation (there is
no library for this constrained form); training uses
:func:`~ppx.inference.sets.estimators.train_steps`.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from ppx.inference.sets.estimators import _info, chunks, train_steps
from ppx.inference.sets.networks import mlp
from ppx.inference.sets.scaling import Standardizer
from ppx.inference.threads import torch_threads

__all__ = ["LinearLikelihood"]


class LinearLikelihood(nn.Module):
    """``log p(x | P) = log(1 + P a(x)) + const``, with ``a = tanh(net(x, label))``.

    Arguments:
        event_dim: features of one event, the label column included.
        label_column: the column holding a discrete label (the decay channel),
            one-hot encoded for the network since each channel has its own
            analysing function; ``None`` for no label.
        labels: the number of label values (``0 .. labels - 1``).
        hidden: width of the network's two hidden layers.
    """

    def __init__(
        self,
        event_dim: int,
        label_column: int | None = None,
        labels: int = 1,
        hidden: int = 64,
    ) -> None:
        super().__init__()
        if label_column is not None and not 0 <= label_column < event_dim:
            raise ValueError(f"label_column {label_column} is not a column of {event_dim}")
        if labels < 1:
            raise ValueError(f"labels must be >= 1, got {labels}")
        self.event_dim, self.label_column, self.labels = event_dim, label_column, labels
        features = event_dim - (label_column is not None)
        self.net = mlp([features + (labels if label_column is not None else 0), hidden, hidden, 1])
        self.scaling = Standardizer(features)
        self.info: dict[str, float | int | str] = {}

    def _inputs(self, events: Tensor) -> Tensor:
        if events.ndim != 2 or events.shape[1] != self.event_dim:
            raise ValueError(
                f"events must have shape (N, {self.event_dim}), got {tuple(events.shape)}"
            )
        if self.label_column is None:
            return self.scaling(events.float())
        keep = [j for j in range(self.event_dim) if j != self.label_column]
        label = events[:, self.label_column].round().long()
        if bool(((label < 0) | (label >= self.labels)).any()):
            raise ValueError(f"labels must lie in 0..{self.labels - 1}")
        onehot = nn.functional.one_hot(label, self.labels).float()
        return torch.cat([self.scaling(events[:, keep].float()), onehot], dim=1)

    def analysing_power(self, events: Tensor) -> Tensor:
        """``a(x_i)`` of each event ``(N, event_dim)``: ``(N,)`` in ``(-1, 1)``."""
        return self._power(self._inputs(events))

    def _power(self, inputs: Tensor) -> Tensor:
        """``a`` of network inputs made by :meth:`_inputs`."""
        bound = 1 - 1e-6  # tanh rounds to 1 in float32; log(1 + P a) must stay finite
        return torch.tanh(self.net(inputs)[:, 0]).clamp(-bound, bound)

    def fit(
        self,
        polarization: Tensor,
        events: Tensor,
        *,
        steps: int = 2000,
        batch_size: int = 1024,
        lr: float = 3e-3,
        seed: int = 0,
        progress: bool = False,
        threads: int | None = None,
    ) -> LinearLikelihood:
        """Maximise ``sum_j log(1 + P_j a(x_j))`` over single events with ``P_j ~ U(-1, 1)``.

        Arguments:
            polarization: ``(M,)`` or ``(M, 1)`` values of ``P``, uniform on ``[-1, 1]``.
            events: ``(M, event_dim)`` events, event ``j`` simulated at ``P_j``.
        """
        p = polarization.reshape(-1).float()
        if p.numel() != events.shape[0] or p.numel() < 2:
            raise ValueError("need M >= 2 values of P and M events")
        if bool(((p < -1) | (p > 1)).any()):
            raise ValueError("the polarisation must lie in [-1, 1]")
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        inputs = self._inputs(events)  # validates the shape and labels (before scaling)
        self.scaling.fit(inputs[:, : self.scaling.loc.numel()])
        inputs = self._inputs(events)  # scaled and one-hot once, not per step
        start = time.perf_counter()

        def step_loss(step: int) -> Tensor:
            rows = torch.randint(p.numel(), (batch_size,), generator=generator)
            return -torch.log1p(p[rows] * self._power(inputs[rows])).mean()

        with torch_threads(threads):
            self.train()
            history = train_steps(self.parameters(), step_loss, steps, lr, progress, "a(x)")
            self.eval()
        self.info = _info(history, start, steps=steps, events=p.numel())
        return self

    @torch.no_grad()
    def grid_log_likelihood(self, events: Tensor, grid: Tensor, chunk: int = 2**16) -> Tensor:
        """``sum_i log(1 + P_g a(x_i))`` for a set ``(N, event_dim)`` at every ``P_g``: ``(G,)``."""
        if events.ndim != 2 or events.shape[0] < 1:
            raise ValueError(f"events must be a non-empty (N, d) tensor, got {tuple(events.shape)}")
        if grid.ndim != 1 or bool(((grid < -1) | (grid > 1)).any()):
            raise ValueError("grid must be a 1-D tensor of polarisations in [-1, 1]")
        total = torch.zeros(grid.numel(), dtype=torch.float64)
        for piece in chunks(events.shape[0], chunk):
            a = self.analysing_power(events[piece]).double()
            total += torch.log1p(grid.double().unsqueeze(1) * a.unsqueeze(0)).sum(1)
        return total
