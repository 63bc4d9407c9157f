"""ODE solvers for the sbibm tasks: one trajectory (LSODA), or a batch (Dormand-Prince).

Both integrate to sbibm's tolerances (``rtol = atol = 1e-8``, as its DifferentialEquations.jl
Tsit5 solves); they agree to about 1e-6 relative, except on populations below about 1e-3,
where the absolute tolerance dominates (in sbibm's solver too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.integrate import odeint

__all__ = ["Derivative", "Rhs", "solve", "solve_one"]

# Dormand-Prince 5(4) Butcher tableau (the nodes are not needed: the systems are
# autonomous): stage weights, 5th-order weights, and the difference between the 5th- and
# the embedded 4th-order weights (the error estimate).
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
_B = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84])
_E = np.array(
    [
        35 / 384 - 5179 / 57600,
        0.0,
        500 / 1113 - 7571 / 16695,
        125 / 192 - 393 / 640,
        -2187 / 6784 + 92097 / 339200,
        11 / 84 - 187 / 2100,
        -1 / 40,
    ]
)

#: The derivative of one state component: a scalar, or an array over a batch.
Derivative = float | np.ndarray

#: ``rhs(y, p)``: the (time-independent) derivatives of the state components
#: ``y[0], y[1], ..`` given the parameters ``p[0], p[1], ..`` (scalars, or arrays over a
#: batch), as a sequence.
Rhs = Callable[[np.ndarray, np.ndarray], Sequence[Derivative]]


def solve_one(
    rhs: Rhs, y0: np.ndarray, params: np.ndarray, times: np.ndarray, tol: float = 1e-8
) -> np.ndarray:
    """Integrate one trajectory with LSODA (fast for one; :func:`solve` is for batches).

    Arguments:
        rhs: The right-hand side (:data:`Rhs`).
        y0: Initial state ``(k,)`` at ``times[0]``.
        params: Parameters ``(m,)``.
        times: Increasing output times ``(T,)``.
        tol: Relative and absolute tolerance.

    Returns:
        States ``(T, k)`` in float64; NaN if the solver failed.
    """
    p = np.asarray(params, dtype=np.float64)
    states, info = odeint(
        lambda t, y: rhs(y, p),
        np.asarray(y0, dtype=np.float64),
        times,
        rtol=tol,
        atol=tol,
        tfirst=True,
        full_output=True,
    )
    if info["message"] != "Integration successful." or not np.isfinite(states).all():
        return np.full_like(states, np.nan)
    return states


def _step(
    rhs: Callable[[np.ndarray, np.ndarray], np.ndarray],
    y: np.ndarray,
    k1: np.ndarray,
    p: np.ndarray,
    h: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Dormand-Prince step of sizes ``h`` from states ``y`` ``(n, k)`` (slopes ``k1``).

    Returns:
        The 5th-order solution, its slope (the next step's ``k1``) and the error estimate.
    """
    hc = h[:, None]
    ks = [k1]
    for row in _A[1:]:
        ks.append(rhs(y + hc * sum(a * k for a, k in zip(row, ks, strict=True)), p))
    y_new = y + hc * sum(b * k for b, k in zip(_B, ks, strict=True))
    ks.append(rhs(y_new, p))
    error = hc * sum(e * k for e, k in zip(_E, ks, strict=True))
    return y_new, ks[-1], error


def solve(
    rhs: Rhs,
    y0: np.ndarray,
    params: np.ndarray,
    times: np.ndarray,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    max_steps: int = 100_000,
) -> np.ndarray:
    """Integrate ``dy/dt = rhs(y, params)`` for a batch of trajectories.

    Every trajectory takes its own adaptive steps (error per trajectory in the RMS norm
    of ``atol + rtol * |y|``, as in Hairer's and SciPy's codes) and lands exactly on
    each output time.

    Arguments:
        rhs: The right-hand side (:data:`Rhs`), called with arrays over the batch.
        y0: Initial states ``(n, k)`` at ``times[0]``.
        params: Parameters ``(n, m)``.
        times: Increasing output times ``(T,)``.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        max_steps: Attempted steps after which unfinished trajectories give up.

    Returns:
        States ``(n, T, k)`` in float64; NaN for a trajectory that failed (non-finite
        values, step size underflow or ``max_steps`` exceeded), like a failed solve in
        sbibm.

    References:
        Dormand and Prince, "A family of embedded Runge-Kutta formulae", J. Comput.
        Appl. Math. 6 (1980) 19-26.
    """
    y = np.array(y0, dtype=np.float64)
    p = np.asarray(params, dtype=np.float64)
    n = y.shape[0]
    out = np.full((n, len(times), y.shape[1]), np.nan)
    out[:, 0] = y
    t = np.full(n, float(times[0]))

    def derivatives(states: np.ndarray, parameters: np.ndarray) -> np.ndarray:
        return np.stack(rhs(states.T, parameters.T), axis=1)

    k1 = derivatives(y, p)
    h = np.full(n, 1e-3 * (times[-1] - times[0]))
    target = np.ones(n, dtype=np.int64)
    active = np.flatnonzero(target < len(times))
    for _ in range(max_steps):
        if active.size == 0:
            break
        goal = times[target[active]]
        span = goal - t[active]
        hh = np.minimum(h[active], span)
        y_new, k_new, error = _step(derivatives, y[active], k1[active], p[active], hh)
        scale = atol + rtol * np.maximum(np.abs(y[active]), np.abs(y_new))
        norm = np.sqrt(np.mean((error / scale) ** 2, axis=1))
        norm = np.where(np.isfinite(norm) & np.isfinite(y_new).all(axis=1), norm, np.inf)
        accept = norm <= 1.0
        factor = np.clip(0.9 * np.maximum(norm, 1e-10) ** -0.2, 0.2, 10.0)
        factor = np.where(accept, factor, np.minimum(factor, 0.5))
        clipped = hh < h[active]
        h[active] = np.where(accept & clipped, np.maximum(h[active], hh * factor), hh * factor)
        done = active[accept]
        t[done] += hh[accept]
        y[done] = y_new[accept]
        k1[done] = k_new[accept]
        arrived = done[(hh >= span)[accept]]
        t[arrived] = times[target[arrived]]
        out[arrived, target[arrived]] = y[arrived]
        target[arrived] += 1
        failed = active[h[active] < 1e-12 * np.maximum(1.0, np.abs(t[active]))]
        out[failed] = np.nan
        target[failed] = len(times)
        active = active[target[active] < len(times)]
    out[active] = np.nan
    return out
