"""PAIRS: train a mean-pool deep set on sets of one or two events, then scale it to large sets.

Stage 1 trains a :class:`~ppx.inference.sets.estimators.SetNPE` with a
:class:`~ppx.inference.sets.networks.DeepSet` on sets of size 1 and 2: pairs
are enough to teach the per-event encoder ``phi`` which features to pool.
Stage 2 freezes ``phi``, simulates sets over the target range of sizes once,
stores each set's pooled features ``[mean_i (x_i, phi(x_i)), log N]`` (a vector whose
size does not depend on ``N``) and fine-tunes only the head ``rho`` and the
flow on them for many epochs. The cost of a fine-tuning step is then the same
at ``N = 10`` and ``N = 10^4``; only the one-off simulation and encoding pass
grows with ``N`` (``self.info`` records both times).

Written here by hand: both stages' loops, the pre-aggregation over sets of
mixed sizes (chunks of sorted sizes simulated at the chunk's largest size and
masked) and the freezing; the flow is zuko's.

References:
    Wehenkel, Kagan, Heinrich & Pollard, "It Just Takes Two: Scaling Amortized
    Inference to Large Sets".
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from ppx.inference.devices import on_device, training_on
from ppx.inference.sets.estimators import (
    SetNPE,
    SetSimulator,
    _info,
    check_n_range,
    log_uniform_sizes,
    train_steps,
)
from ppx.inference.sets.networks import DeepSet
from ppx.inference.threads import torch_threads

__all__ = ["PAIRS"]


class PAIRS(SetNPE):
    """A deep-set NPE trained on pairs, its head fine-tuned on pre-aggregated large sets.

    Arguments:
        event_dim: features of one event.
        theta_dim: dimension of ``theta``.
        embedding_dim: size of the set embedding.
        flow: zuko flow, ``"nsf"`` or ``"maf"``.
        transforms: flow transforms.
        hidden: width of the hidden layers.

    Example:
        >>> pairs = PAIRS(event_dim=1).fit(toy.simulate_sets)  # stage 1: N <= 2
        >>> pairs.finetune(toy.simulate_sets, n_range=(1, 10_000))  # stage 2
        >>> pairs.sample(events, 2000)  # events: (N, 1), 1 <= N <= 10_000
    """

    network: DeepSet

    def __init__(
        self,
        event_dim: int,
        theta_dim: int = 1,
        embedding_dim: int = 32,
        flow: str = "nsf",
        transforms: int = 3,
        hidden: int = 64,
    ) -> None:
        network = DeepSet(event_dim, embedding_dim, hidden=hidden)
        super().__init__(event_dim, theta_dim, network, embedding_dim, flow, transforms, hidden)

    def fit(  # type: ignore[override]
        self,
        simulator: SetSimulator,
        *,
        n_range: tuple[int, int] = (1, 2),
        steps: int = 2000,
        batch_size: int = 512,
        lr: float = 1e-3,
        seed: int = 0,
        progress: bool = True,
        threads: int | None = None,
        device: str = "auto",
    ) -> PAIRS:
        """Stage 1: train ``phi``, ``rho`` and the flow on sets of size 1 and 2 (``n_range``).

        Keywords as in :meth:`SetNPE.fit`; a range beyond 2 is allowed but
        defeats the purpose.
        """
        super().fit(
            simulator, n_range=n_range, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
            progress=progress, threads=threads, device=device,
        )  # fmt: skip
        self.info = {f"stage1_{key}": value for key, value in self.info.items()}
        return self

    @torch.no_grad()
    def preaggregate(
        self,
        simulator: SetSimulator,
        sizes: Tensor,
        generator: torch.Generator,
        max_events: int = 2**16,
    ) -> tuple[Tensor, Tensor]:
        """Simulate a set per entry of ``sizes``, pool each once: ``theta`` ``(M, p)``, features.

        Sets are sorted by size and simulated in chunks of at most
        ``max_events`` events at the chunk's largest size, the surplus events
        masked out (events are iid given ``theta``, so dropping some is exact).
        """
        order = sizes.sort().values
        thetas, pooled = [], []
        begin = 0
        while begin < len(order):
            end = begin + 1
            while end < len(order) and (end - begin + 1) * int(order[end]) <= max_events:
                end += 1
            n = int(order[end - 1])
            theta, events = simulator(end - begin, n, generator)
            self._check_batch(theta, events, n)
            lengths = order[begin:end].to(events.device)
            mask = torch.arange(n, device=events.device).unsqueeze(0) < lengths.unsqueeze(1)
            thetas.append(theta)
            pooled.append(self.network.pool(self.event_scaling(events), mask))
            begin = end
        return torch.cat(thetas), torch.cat(pooled)

    def finetune(
        self,
        simulator: SetSimulator,
        *,
        n_range: tuple[int, int] = (1, 10_000),
        num_sets: int = 20_000,
        steps: int = 2000,
        batch_size: int = 512,
        lr: float = 1e-3,
        seed: int = 1,
        max_events: int = 2**16,
        progress: bool = True,
        threads: int | None = None,
        device: str = "auto",
    ) -> PAIRS:
        """Stage 2: freeze ``phi``, pre-aggregate ``num_sets`` sets once, fine-tune ``rho``, flow.

        Arguments:
            simulator: a :class:`SetSimulator`.
            n_range: set sizes to serve, drawn log-uniform per set.
            num_sets: sets simulated and pooled (once).
            steps: optimiser steps, each on a minibatch of the pooled sets.
            batch_size: pooled sets per step.
            lr: Adam's initial learning rate (cosine decay to zero).
            seed: seeds the simulations and the minibatches.
            max_events: events simulated and encoded at once while pre-aggregating;
                its peak memory grows as ``max_events`` times ``phi``'s width (the
                default, 2^16, is also :meth:`SetNPE.fit`'s cap of events per step).
            progress: show a tqdm bar.
            threads: torch threads.
            device: where to pool and train (``"auto"``: the GPU when present);
                the estimator is back on the CPU afterwards.

        Returns:
            ``self``, now answering for sets with sizes in ``n_range``;
            ``self.info`` gains ``preaggregate_seconds``, ``stage2_seconds``
            (the fine-tuning alone, independent of ``N``) and ``stage2_events``.
        """
        if self.n_range is None:
            raise ValueError("PAIRS.finetune needs the stage-1 network: call fit() first")
        low, high = check_n_range(n_range)
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        sizes = log_uniform_sizes(num_sets, (low, high), generator)
        for parameter in self.network.phi.parameters():
            parameter.requires_grad_(False)
        with torch_threads(threads), training_on(self, device) as chosen:
            start = time.perf_counter()
            simulate = on_device(simulator, chosen)
            theta, pooled = self.preaggregate(simulate, sizes, generator, max_events)
            aggregated = time.perf_counter() - start
            target = self.theta_scaling(theta)

            def step_loss(step: int) -> Tensor:
                batch = torch.randint(len(target), (batch_size,), generator=generator)
                batch = batch.to(chosen)
                context = self.network.head(pooled[batch])
                return -self.flow(context).log_prob(target[batch]).mean()

            start = time.perf_counter()
            self.train()
            history = train_steps(
                self.parameters(), step_loss, steps, lr, progress, "PAIRS stage 2"
            )
            self.eval()
        stage2 = _info(history, start, steps=steps, n_low=low, n_high=high, num_sets=num_sets)
        self.info.update({f"stage2_{key}": value for key, value in stage2.items()})
        self.info.update(preaggregate_seconds=aggregated, stage2_events=int(sizes.sum()))
        self.n_range = (low, high)
        return self
