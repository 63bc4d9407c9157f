"""What ``ppx`` tables and plots show: latents and tags as columns, with units and names.

A record (a trace, or a mapping of values) becomes columns: every controlled latent
and numeric tag present in all records, scalars as they are, vectors of up to
:data:`MAX_COMPONENTS` values as components ``key[i]``. The address keys of a
repeated name's later draws (``pythia/flat__Uniform__17``, a Gillespie run's
``dt__Exponential__2``) are left out: they are bookkeeping, not quantities.

A column is discrete when its values are integers (an integer dtype, a draw of a
distribution with discrete support, or integral values). It is categorical (shown
as the fraction of each value) when its simulator names the values, when it is a
draw of a ``Categorical`` or ``Bernoulli``, or when it is integral, not a draw of
another discrete distribution (a count, such as a ``Poisson`` draw), and spans at
most :data:`MAX_CATEGORIES` values.

A simulator of :mod:`ppx.simulators.registry` states units and names in its
module (the one the registry names), next to ``add_arguments``::

    def quantities(args: argparse.Namespace) -> dict[str, dict[str, object]]:
        return {
            "px": {"unit": "GeV", "label": "$p_x$"},
            "channel": {"categories": ["e_nu_nu", "mu_nu_nu", ...]},
        }

keyed by record key (a draw's name or a tag) or component (``"tau_visible[0]"``,
which also takes a unit from its vector's entry). ``unit`` goes into table headings
and axis labels, ``label`` (matplotlib mathtext) into axis labels, ``categories``
names the values 0, 1, ... of a categorical. ``args`` are the simulator's parsed
options (:func:`describe`), as the names may depend on them.
"""

from __future__ import annotations

import importlib
import shlex
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from torch.distributions import Bernoulli, Categorical, OneHotCategorical

from ppx.addressing import split_address
from ppx.inference import Empirical
from ppx.inference.records import Record, draw_key, record_keys, to_numpy
from ppx.simulators import registry
from ppx.trace import Trace

__all__ = [
    "MAX_CATEGORIES",
    "MAX_COMPONENTS",
    "Quantity",
    "UnknownQuantity",
    "collect",
    "describe",
    "finite",
    "frequencies",
    "latent_names",
    "quantities",
    "select",
]

#: Vectors up to this size are shown component by component; larger ones are left out.
MAX_COMPONENTS = 16
#: Discrete columns with at most this many distinct values are categorical.
MAX_CATEGORIES = 12

Descriptions = Mapping[str, Mapping[str, object]]


@dataclass(frozen=True, eq=False)
class Quantity:
    """One column: a latent, a tag, or one component of a vector.

    Attributes:
        key: the record key, or ``key[i]`` for a component.
        values: float64 ``(records,)``.
        discrete: the values are integers.
        categorical: shown as frequencies of values (discrete with few values, or named).
        unit: the unit the simulator states, or ``""``.
        label: the axis label the simulator states, or ``""``.
        categories: names of the values 0, 1, ..., or ``()``.
    """

    key: str
    values: np.ndarray
    discrete: bool = False
    categorical: bool = False
    unit: str = ""
    label: str = ""
    categories: tuple[str, ...] = ()

    @property
    def heading(self) -> str:
        """``key [unit]``: the row heading of a table."""
        return f"{self.key} [{self.unit}]" if self.unit else self.key

    @property
    def axis_label(self) -> str:
        """``label [unit]``: the axis label of a plot."""
        text = self.label or self.key
        return f"{text} [{self.unit}]" if self.unit else text

    def name(self, value: float) -> str:
        """The category name of ``value``, or the value as an integer."""
        index = int(round(value))
        return self.categories[index] if 0 <= index < len(self.categories) else str(index)


class UnknownQuantity(ValueError):
    """A name (``parameter="names"``) or truth (``"truth"``) that no column has."""

    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def describe(simulator: str | None) -> dict[str, dict[str, object]]:
    """What simulator ``"NAME [options]"`` states about its quantities (module docstring).

    Returns ``{}`` for an address, a ``module:function``, a simulator that states
    nothing, or one whose module cannot be imported (a missing extra).
    """
    try:
        words = shlex.split(simulator or "")
    except ValueError:
        return {}
    if not words or words[0] not in registry.names():
        return {}
    try:
        module = importlib.import_module(registry.entry(words[0]).module)
        hook = getattr(module, "quantities", None)
        if not callable(hook):
            return {}
        found = hook(registry.parse_options(words[0], words[1:]))
    except (ImportError, ValueError):
        return {}
    if not isinstance(found, Mapping):
        return {}
    return {str(k): dict(v) for k, v in found.items() if isinstance(v, Mapping)}


def latent_names(traces: Sequence[Record]) -> list[str]:
    """The keys that tables and plots show, present in every record, in first-seen order."""
    if not traces:
        return []
    common = set.intersection(*(set(_shown_keys(record)) for record in traces))
    return [key for key in _shown_keys(traces[0]) if key in common]


def _shown_keys(record: Record) -> list[str]:
    """Controlled latents and tags of a trace, keys of a mapping; no repeated-name address."""
    if isinstance(record, Trace):
        keys = [draw_key(record, draw) for draw in record.controlled_latents()]
        keys += [tag for tag in record.tags if tag not in keys]
    else:
        keys = record_keys(record)
    present = set(keys)
    return [key for key in dict.fromkeys(keys) if not _repeats(key, present)]


def _repeats(key: str, keys: set[str]) -> bool:
    """``key`` is the address of a later draw of a name that is also a key."""
    split = split_address(key)
    return split is not None and split[0].rpartition("__")[0] in keys


def quantities(posterior: Empirical, simulator: str | None = None) -> list[Quantity]:
    """The columns of ``posterior``, described by ``simulator`` (default: its metadata)."""
    return collect(posterior.traces, describe(simulator or _model(posterior.metadata)))[1]


def _model(metadata: Mapping[str, object]) -> str | None:
    model = metadata.get("simulator") or metadata.get("model")
    return model if isinstance(model, str) else None


def _draw_kind(trace: Trace, key: str) -> str:
    """``"categorical"``, ``"count"`` (another discrete support), or ``""``: what
    distribution draws ``key`` (``""`` also for a tag)."""
    try:
        distribution = trace.draw(key).distribution
    except KeyError:
        return ""
    if isinstance(distribution, Categorical | Bernoulli | OneHotCategorical):
        return "categorical"
    discrete = getattr(getattr(distribution, "support", None), "is_discrete", False)
    return "count" if discrete else ""


def collect(
    records: Iterable[Record], described: Descriptions | None = None
) -> tuple[int, list[Quantity]]:
    """The number of ``records`` and the columns of the keys every record has, in one pass.

    Only numeric values of one shape and at most :data:`MAX_COMPONENTS` elements are
    kept (8 bytes an element), so ``records`` may stream from a dataset of any size.

    Arguments:
        records: traces (their controlled latents and tags, the first trace's
            distributions telling categorical draws from counts) or mappings.
        described: :func:`describe`'s units, labels and category names.
    """
    columns: dict[str, array[float]] = {}
    shapes: dict[str, tuple[int, ...] | None] = {}
    kinds: dict[str, str] = {}
    count = 0
    for record in records:
        count += 1
        for key in _shown_keys(record):
            data = to_numpy(record[key])
            shape = shapes.setdefault(key, data.shape)
            if shape != data.shape or data.dtype.kind not in "biuf" or data.size > MAX_COMPONENTS:
                shapes[key] = None
                continue
            columns.setdefault(key, array("d")).extend(data.reshape(-1).astype(float).tolist())
            if key not in kinds:
                kind = _draw_kind(record, key) if isinstance(record, Trace) else ""
                kinds[key] = kind or ("integer" if data.dtype.kind in "biu" else "")
    found = []
    for key, column in columns.items():
        shape = shapes[key]
        if shape is not None and len(column) == count * int(np.prod(shape)):
            table = np.frombuffer(column).reshape(count, -1)
            found += _components(key, table, kinds[key], described or {})
    return count, found


def _components(key: str, table: np.ndarray, kind: str, described: Descriptions) -> list[Quantity]:
    """The column of a scalar, or the components of a vector, whose discrete components
    are all categorical or none (a vector of counts is not split by their spread)."""
    if table.shape[1] == 1:
        return [_quantity(key, table[:, 0], kind, described.get(key, {}))]
    parent = described.get(key, {})
    parts = [
        _quantity(f"{key}[{i}]", table[:, i], kind, {**parent, **described.get(f"{key}[{i}]", {})})
        for i in range(table.shape[1])
    ]
    discrete = [part.categorical for part in parts if part.discrete]
    if all(discrete) or not any(discrete):
        return parts
    return [replace(part, categorical=bool(part.categories)) for part in parts]


def _quantity(key: str, values: np.ndarray, kind: str, about: Mapping[str, object]) -> Quantity:
    finite = values[np.isfinite(values)]
    names = about.get("categories", ())
    categories = ()
    if isinstance(names, Sequence) and not isinstance(names, str):
        categories = tuple(str(n) for n in names)
    discrete = bool(kind or categories) or bool(np.all(finite == np.round(finite)))
    few = finite.size > 0 and np.ptp(finite) < MAX_CATEGORIES
    categorical = (
        bool(categories) or kind == "categorical" or (discrete and kind != "count" and few)
    )
    return Quantity(
        key,
        values,
        discrete=discrete,
        categorical=categorical,
        unit=str(about.get("unit", "")),
        label=str(about.get("label", "")),
        categories=categories,
    )


def select(found: Sequence[Quantity], names: Sequence[str] | None, where: str) -> list[Quantity]:
    """The columns named in ``names`` (a vector's name selects its components), in order.

    Raises:
        UnknownQuantity: a name matches no column; the message lists the available ones.
    """
    if not names:
        return list(found)
    chosen: list[Quantity] = []
    for name in names:
        match = [q for q in found if q.key == name or q.key.startswith(f"{name}[")]
        if not match:
            message = f"no latent or tag {name!r} in {where}; {available(found)}"
            raise UnknownQuantity(message, "names")
        chosen += [q for q in match if q not in chosen]
    return chosen


def available(found: Sequence[Quantity], limit: int = 12) -> str:
    """``available: a, b, c`` (the first ``limit`` keys, and how many in all)."""
    keys = [q.key for q in found]
    more = f", ... ({len(keys)} in all)" if len(keys) > limit else ""
    return f"available: {', '.join(keys[:limit]) or 'none'}{more}"


def finite(quantity: Quantity, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The finite values of ``quantity`` and their weights, normalised to sum to 1."""
    keep = np.isfinite(quantity.values) & (weights > 0)
    kept = weights[keep]
    return quantity.values[keep], kept / kept.sum() if kept.size else kept


def frequencies(quantity: Quantity, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values of a discrete ``quantity`` and their (weighted) fractions.

    Every named category is listed, also those never drawn; unnamed integers over a
    span of at most :data:`MAX_CATEGORIES` are listed from the least to the largest.
    """
    values, kept = finite(quantity, weights)
    drawn = np.unique(values)
    if quantity.categories:
        listed = np.union1d(np.arange(len(quantity.categories)), drawn)
    elif quantity.discrete and drawn.size and np.ptp(drawn) <= MAX_CATEGORIES:
        listed = np.arange(drawn.min(), drawn.max() + 1)
    else:
        listed = drawn
    fractions = np.array([kept[values == value].sum() for value in listed])
    return listed, fractions
