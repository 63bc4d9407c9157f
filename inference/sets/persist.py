"""Set estimators on disk, and trained from disk: save/load, and a simulator that reads a store.

:func:`save_estimator` writes a :class:`~ppx.inference.sets.estimators.SetNPE`,
:class:`~ppx.inference.sets.pairs.PAIRS` or
:class:`~ppx.inference.sets.ratio.SummedEstimator` as a torch pickle: its
:class:`EstimatorConfig` (what rebuilds the modules), its ``state_dict``, the
set sizes it answers for, its training record, the prior (summed estimators)
and free-form text ``metadata`` (the store's layout, say), and its provenance
record (:mod:`ppx.provenance`). :func:`load_estimator` rebuilds it.

The estimators train on a :class:`~ppx.inference.sets.estimators.SetSimulator`,
a callable that makes fresh sets of a requested size. :class:`StoreSimulator`
is one backed by stored ensembles (:class:`~ppx.inference.sets.set_store.SetSimulations`):
a request for ``B`` sets of ``N`` events draws ``B`` stored sets with at least
``N`` events (uniformly, with replacement) and keeps ``N`` of each one's events
at random, without replacement. Events are iid given ``theta``, so a subsample
is a set of ``N`` events from the same ``theta``: exact, though a store of ``S``
sets offers at most ``S`` distinct values of ``theta``, so small stores overfit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from torch.distributions import Distribution

from ppx.inference.sets.estimators import SetNPE
from ppx.inference.sets.pairs import PAIRS
from ppx.inference.sets.ratio import SummedEstimator
from ppx.inference.sets.set_store import SetSimulations
from ppx.provenance import KEY, Provenance, collect, from_checkpoint, trained_on

__all__ = [
    "KINDS",
    "EstimatorConfig",
    "SavedEstimator",
    "StoreSimulator",
    "load_estimator",
    "save_estimator",
]

FORMAT = "ppx.sets.estimator"
VERSION = 1
#: The estimator kinds: full-set NPE, PAIRS, and the summed per-event estimator.
KINDS = ("npe", "pairs", "summed")
SetEstimator = SetNPE | SummedEstimator


@dataclass(frozen=True)
class EstimatorConfig:
    """What builds an untrained estimator: its kind and constructor arguments.

    Attributes:
        kind: ``"npe"``, ``"pairs"`` or ``"summed"``.
        event_dim: features of one event.
        theta_dim: dimension of ``theta`` (``1`` for ``"summed"``).
        network: ``"npe"``: ``"deepset"`` or ``"transformer"``.
        method: ``"summed"``: ``"nle"`` or ``"nre"``.
        embedding_dim: set embedding size (``"npe"``, ``"pairs"``).
        flow: ``"nsf"`` or ``"maf"`` (``"npe"``, ``"pairs"``).
        transforms: flow transforms.
        hidden: width of the hidden layers.
        bounds: ``"summed"``: the ``theta`` range of the grid (``None``: from the prior).
    """

    kind: str
    event_dim: int
    theta_dim: int = 1
    network: str = "deepset"
    method: str = "nle"
    embedding_dim: int = 32
    flow: str = "nsf"
    transforms: int = 3
    hidden: int = 64
    bounds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"the estimator kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "summed" and self.theta_dim != 1:
            raise ValueError(
                f"the summed estimator needs a one-dimensional theta, got {self.theta_dim}"
            )

    def build(self, prior: Distribution | None = None) -> SetEstimator:
        """A new, untrained estimator; ``prior`` is needed by ``"summed"``."""
        width, flow, depth = self.embedding_dim, self.flow, self.transforms
        if self.kind == "npe":
            network = self.network
            return SetNPE(self.event_dim, self.theta_dim, network, width, flow, depth, self.hidden)
        if self.kind == "pairs":
            return PAIRS(self.event_dim, self.theta_dim, width, flow, depth, self.hidden)
        if prior is None:
            raise ValueError("the summed estimator needs the prior of theta (the store has none)")
        return SummedEstimator(
            self.event_dim, prior, self.method, self.hidden, self.transforms, self.bounds
        )


@dataclass(frozen=True)
class SavedEstimator:
    """A loaded estimator with its configuration and metadata.

    Attributes:
        estimator: the trained estimator, in eval mode.
        config: what built it.
        metadata: text saved with it (e.g. ``simulator``, ``layout``, ``store``).
        provenance: what trained it (``None``: the file has no record).
    """

    estimator: SetEstimator
    config: EstimatorConfig
    metadata: dict[str, str] = field(default_factory=dict)
    provenance: Provenance | None = None

    @property
    def n_range(self) -> tuple[int, int] | None:
        """The set sizes it answers for (``None``: any size, the summed estimator)."""
        return getattr(self.estimator, "n_range", None)


def save_estimator(
    estimator: SetEstimator,
    config: EstimatorConfig,
    path: str | Path,
    metadata: dict[str, str] | None = None,
    provenance: Provenance | None = None,
) -> Path:
    """Write a trained ``estimator`` built from ``config`` to ``path`` (a torch pickle).

    ``provenance`` defaults to a record of this process without a seed, whose
    simulator is that of ``metadata``'s ``store`` (else its ``simulator``).
    """
    metadata = dict(metadata or {})
    if provenance is None:
        store, name = metadata.get("store"), metadata.get("simulator")
        provenance = collect(simulator=name if store is None else trained_on(store, name))
    if isinstance(estimator, SummedEstimator):
        config = EstimatorConfig(**{**asdict(config), "bounds": tuple(estimator.bounds)})
    record = {
        "format": FORMAT,
        "version": VERSION,
        "config": asdict(config),
        "state": estimator.state_dict(),
        "n_range": getattr(estimator, "n_range", None),
        "trained": getattr(estimator, "trained", True),
        "info": dict(estimator.info),
        "prior": getattr(estimator, "prior", None),
        "metadata": metadata,
        KEY: provenance.to_dict(),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(record, path)
    return path


def load_estimator(path: str | Path) -> SavedEstimator:
    """Rebuild an estimator written by :func:`save_estimator`.

    The file is a pickle (it may hold the prior): load only files you trust.

    Raises:
        ValueError: the file is not a PPX set estimator.
    """
    try:
        record = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a truncated file, another format, a pickle of a lost class
        raise ValueError(f"{path} is not a PPX set estimator ({type(error).__name__})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path} is not a PPX set estimator (saved by ppx sets train)")
    settings = dict(record["config"])
    if settings.get("bounds") is not None:
        settings["bounds"] = tuple(settings["bounds"])
    config = EstimatorConfig(**settings)
    estimator = config.build(record["prior"])
    estimator.load_state_dict(record["state"])
    estimator.info = dict(record["info"])
    if isinstance(estimator, SummedEstimator):
        estimator.trained = bool(record["trained"])
    elif record["n_range"] is not None:
        estimator.n_range = (int(record["n_range"][0]), int(record["n_range"][1]))
    estimator.eval()
    provenance = from_checkpoint(record, str(path))
    return SavedEstimator(estimator, config, dict(record["metadata"]), provenance)


class StoreSimulator:
    """A :class:`~ppx.inference.sets.estimators.SetSimulator` that subsamples stored sets.

    Arguments:
        sets: the stored ensembles.

    A request for ``num_sets`` sets of ``n`` events picks stored sets with at
    least ``n`` events and keeps ``n`` of each one's events, chosen at random.
    When no stored set is that large (only the pilot batch that standardises a
    :class:`SetNPE`, 8 events a set, asks for that), events are drawn with
    replacement instead.

    Example:
        >>> sampler = StoreSimulator(load_sets("sets.h5"))
        >>> SetNPE(sampler.event_dim).fit(sampler, n_range=sampler.n_range)
    """

    def __init__(self, sets: SetSimulations) -> None:
        if len(sets) == 0:
            raise ValueError("the store holds no sets")
        self.sets = sets
        self.sizes = torch.from_numpy(sets.sizes)
        self.offsets = torch.from_numpy(sets.offsets)

    @property
    def event_dim(self) -> int:
        """Features of one event."""
        return self.sets.event_dim

    @property
    def n_range(self) -> tuple[int, int]:
        """The smallest and largest stored set sizes."""
        return int(self.sizes.min()), int(self.sizes.max())

    def __call__(
        self, num_sets: int, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``theta`` ``(num_sets, theta_dim)`` and events ``(num_sets, n, event_dim)``."""
        if num_sets < 1 or n < 1:
            raise ValueError(f"need num_sets >= 1 and n >= 1, got {num_sets}, {n}")
        eligible = torch.nonzero(self.sizes >= n)[:, 0]
        replace = len(eligible) == 0
        if replace:
            eligible = torch.arange(len(self.sizes))
        rows = eligible[torch.randint(len(eligible), (num_sets,), generator=generator)]
        sizes = self.sizes[rows]
        if replace:
            positions = (torch.rand(num_sets, n, generator=generator) * sizes[:, None]).long()
        else:
            width = int(sizes.max())
            scores = torch.rand(num_sets, width, generator=generator)
            scores = scores.masked_fill(torch.arange(width)[None, :] >= sizes[:, None], 2.0)
            positions = scores.argsort(1)[:, :n]
        events = self.sets.data[self.offsets[rows][:, None] + positions]
        return self.sets.theta[rows], events
