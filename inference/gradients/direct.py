"""Gillespie's direct method in torch, batched: the score function and Gumbel-softmax runs.

Both advance ``B`` trajectories together, one reaction per step, until each
passes the window's end (or reaches a state where nothing can react).

* :func:`score_run` keeps the states detached and accumulates the score
  ``d log p(path) / d c_p`` of each trajectory in closed form: for mass action,
  ``N_p / c_p - integral of sum_{j of p} h_j(x(t)) dt`` over ``[0, t_end]``
  (``N_p`` the firings of the reactions of rate ``p``; the integral includes the
  last, censored, waiting time: the survival term).
* :func:`gumbel_run` is the Gumbel-softmax straight-through (GS-ST) relaxation:
  the waiting time is reparameterised, ``tau = E / a0`` with ``E ~ Exp(1)``; the
  reaction is the argmax of ``log a + g`` (``g`` Gumbel) in the forward pass,
  and its one-hot's gradient is that of ``softmax((log a + g) / temperature)``.
  The state update ``x += nu^T y`` carries that gradient. Gradients reach the
  time averages through the waiting times and the states, and the states at
  fixed times through the states only: an event crossing an observation time
  as the rates change is invisible to it (a bias of GS-ST for time-dependent
  observables that the score function and the alternative path do not have).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .kinetics import Kinetics
from .observables import Summaries, SummaryAccumulator, Window

__all__ = ["ScoreRun", "gumbel_run", "score_run"]

_TINY = 1e-300


@dataclass(frozen=True)
class ScoreRun:
    """A batch of trajectories with the score of each.

    Attributes:
        summaries: their summaries (no gradient).
        score: ``(B, P)`` ``d log p(path) / d c_p`` per rate.
        num_events: ``(B,)`` reactions fired.
        max_total_propensity: the largest ``a0`` any trajectory met (a bound for
            uniformization).
    """

    summaries: Summaries
    score: Tensor
    num_events: Tensor
    max_total_propensity: float


def _start(kinetics: Kinetics, batch: int) -> tuple[Tensor, Tensor, Tensor]:
    x = kinetics.x0.expand(batch, -1).clone()
    t = torch.zeros(batch, dtype=x.dtype, device=x.device)
    running = torch.ones(batch, dtype=torch.bool, device=x.device)
    return x, t, running


@torch.no_grad()
def score_run(
    kinetics: Kinetics,
    window: Window,
    batch: int,
    generator: torch.Generator | None = None,
    max_steps: int = 1_000_000,
) -> ScoreRun:
    """Simulate ``batch`` trajectories; return their summaries and scores.

    Raises:
        RuntimeError: ``max_steps`` steps did not finish every trajectory.
    """
    x, t, running = _start(kinetics, batch)
    rates = kinetics.parameters.detach()
    summaries = SummaryAccumulator(window, (batch,), x)
    fired = torch.zeros(batch, len(kinetics.names), dtype=x.dtype, device=x.device)
    exposure = torch.zeros_like(fired)  # integral of sum_{j of p} h_j dt
    events = torch.zeros(batch, dtype=torch.long, device=x.device)
    largest = 0.0
    t_end = window.t_end
    for _ in range(max_steps):
        h = kinetics.combinatorics(x)
        a = rates @ kinetics.membership * h
        a0 = a.sum(-1)
        largest = max(largest, float(a0.max()))
        stuck = a0 <= 0
        dt = torch.empty_like(a0).exponential_(generator=generator) / a0.clamp_min(_TINY)
        dt = torch.where(stuck, torch.full_like(dt, t_end), dt)
        held = torch.clamp(t_end - t, min=0.0).minimum(dt)  # time in [t, t_end) at state x
        summaries.add(x, t, dt, running)
        exposure += torch.where(running, held, torch.zeros_like(held)).unsqueeze(-1) * (
            h @ kinetics.membership.T
        )
        fires = running & ~stuck & (t + dt <= t_end)
        choice = torch.multinomial(torch.where(stuck.unsqueeze(-1), 1.0, a), 1, generator=generator)
        reaction = choice.squeeze(-1)
        x = torch.where(fires.unsqueeze(-1), x + kinetics.stoichiometry[reaction], x)
        fired += fires.unsqueeze(-1) * kinetics.membership.T[reaction]
        events += fires
        t = t + dt
        running = fires
        if not running.any():
            break
    else:
        raise RuntimeError(f"score_run: {max_steps} steps did not reach t_end = {t_end}")
    score = fired / rates - exposure
    return ScoreRun(summaries.result(), score, events, largest)


def gumbel_run(
    kinetics: Kinetics,
    window: Window,
    batch: int,
    temperature: float,
    generator: torch.Generator | None = None,
    max_steps: int = 1_000_000,
) -> Summaries:
    """Simulate ``batch`` trajectories with the GS-ST relaxation; differentiable summaries.

    Raises:
        ValueError: ``temperature`` not > 0.
        RuntimeError: ``max_steps`` steps did not finish every trajectory.
    """
    if not temperature > 0:
        raise ValueError(f"temperature: must be > 0, got {temperature}")
    x, t, running = _start(kinetics, batch)
    summaries = SummaryAccumulator(window, (batch,), x)
    t_end = window.t_end
    nu = kinetics.stoichiometry
    for _ in range(max_steps):
        a = kinetics.propensities(x)
        a0 = a.sum(-1)
        stuck = (a0 <= 0).detach()
        unit = torch.empty_like(a0).exponential_(generator=generator).detach()
        dt = torch.where(stuck, torch.full_like(a0, t_end), unit / a0.clamp_min(_TINY))
        summaries.add(x, t, dt, running)
        fires = (running & ~stuck & (t + dt <= t_end)).detach()
        uniform = torch.rand(a.shape, dtype=a.dtype, device=a.device, generator=generator)
        gumbel = -torch.log(-torch.log(uniform.clamp_min(_TINY)))
        logits = torch.log(a.clamp_min(_TINY)) + gumbel
        soft = torch.softmax(logits / temperature, -1)
        hard = torch.nn.functional.one_hot(logits.argmax(-1), a.shape[-1]).to(soft.dtype)
        one_hot = hard + soft - soft.detach()
        x = torch.where(fires.unsqueeze(-1), x + one_hot @ nu, x)
        t = t + dt
        running = fires
        if not running.any():
            break
    else:
        raise RuntimeError(f"gumbel_run: {max_steps} steps did not reach t_end = {t_end}")
    return summaries.result()
