"""The sbibm benchmark tasks as PPX programs, with sbibm's reference posteriors.

Five tasks of the SBI benchmark (Lueckmann et al. 2021), with sbibm's priors,
simulators and observation sizes:

======================  ==========  ======  =========================================
name                    theta       x       reference posterior
======================  ==========  ======  =========================================
``gaussian_linear``     10          10      exact (Gaussian)
``two_moons``           2           2       sbibm's samples
``slcp``                5           8       sbibm's samples
``sir``                 2           10      sbibm's samples
``lotka_volterra``      4           20      sbibm's samples
======================  ==========  ======  =========================================

Each :class:`Task` holds the PPX program (``task.model``: ``theta`` drawn once as a
vector, the simulator's noise as ``control=False`` draws, the data named ``x``), the
prior as a ``torch.distributions`` object over the flat ``theta`` (what sbi trains
with), a vectorised :meth:`Task.simulate`, and sbibm's ten observations, true
parameters and reference posterior samples (downloaded once from PyPI, see
:mod:`ppx.simulators.sbi_tasks._reference`). :func:`c2st` is sbibm's metric.

Serve one with ``python -m ppx.simulators.sbi_tasks --task two_moons --address ADDR``
(:mod:`~ppx.simulators.sbi_tasks.options`); :func:`get_task` builds one by name.

Example:
    >>> task = get_task("two_moons")
    >>> theta = task.prior.sample((1000,))
    >>> x = task.simulate(theta)              # (1000, 2)
    >>> trace = ppx.LocalModel(task.model).run(observe={"theta": theta[0]})

References:
    Lueckmann, Boelts, Greenberg, Goncalves and Macke, "Benchmarking simulation-based
    inference", AISTATS 2021 (https://github.com/sbi-benchmark/sbibm).
"""

from __future__ import annotations

from ._reference import CACHE_ENV, ReferenceDataUnavailable, fetch_reference_files
from ._task import NUM_OBSERVATIONS, Task
from .gaussian_linear import GaussianLinear
from .lotka_volterra import LotkaVolterra
from .metrics import c2st
from .options import add_arguments, from_arguments
from .sir import SIR
from .slcp import SLCP
from .tasks import TASKS, get_task
from .two_moons import TwoMoons

__all__ = [
    "CACHE_ENV",
    "NUM_OBSERVATIONS",
    "SIR",
    "SLCP",
    "TASKS",
    "GaussianLinear",
    "LotkaVolterra",
    "ReferenceDataUnavailable",
    "Task",
    "TwoMoons",
    "add_arguments",
    "c2st",
    "fetch_reference_files",
    "from_arguments",
    "get_task",
]
