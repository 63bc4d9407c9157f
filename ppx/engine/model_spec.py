"""Picklable recipes for models, so that Dask workers can build their own.

A :class:`ppx.RemoteModel` owns sockets and processes, which cannot travel to
another process. A :class:`ModelSpec` says how to make the same model again:
spawn the same simulator command, connect to the same address, or wrap the
same function. Each worker builds a model once per spec and keeps it (and its
simulator process) for all the tasks it runs.
"""

from __future__ import annotations

import atexit
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ppx.engine.local import LocalModel
from ppx.engine.model import Model, SimulatorInfo
from ppx.engine.remote import RemoteModel

__all__ = ["ModelSpec"]

_BUILT: dict[str, Model] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelSpec:
    """How to build a model in any process.

    Attributes:
        kind: ``"spawn"`` (start ``target``, an argv), ``"connect"`` (to the
            address ``target``) or ``"local"`` (wrap the function ``target``).
        target: the argv, address or function.
        options: keyword arguments of :meth:`RemoteModel.spawn` / ``RemoteModel``.
        key: identifies the spec across processes (workers cache by it).
    """

    kind: Literal["spawn", "connect", "local"]
    target: Sequence[str] | str | Callable[[], object]
    options: dict[str, Any] = field(default_factory=dict)  # keyword arguments, forwarded
    key: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def of(cls, model: Model | ModelSpec) -> ModelSpec:
        """The spec that rebuilds ``model`` (spawned, connected or local).

        In this process the spec resolves to ``model`` itself (no second
        simulator is started here); other processes build their own.
        """
        if isinstance(model, ModelSpec):
            return model
        spec = cls._describe(model)
        with _LOCK:
            _BUILT[spec.key] = model
        return spec

    @classmethod
    def _describe(cls, model: Model) -> ModelSpec:
        if isinstance(model, RemoteModel):
            if model.spawn_arguments is not None:
                options: dict[str, Any] = dict(model.spawn_arguments)
                return cls("spawn", options.pop("argv"), options)
            options = {
                "timeout": model.timeout,
                "handshake_timeout": model.handshake_timeout,
                "max_trace_length": model.max_trace_length,
                "max_message_bytes": model.max_message_bytes,
            }
            return cls("connect", model.address, options)
        if isinstance(model, LocalModel):
            limit = model.max_trace_length
            return cls("local", model.fn, {"name": model.name, "max_trace_length": limit})
        raise TypeError(f"cannot ship a {type(model).__name__} to other processes")

    @classmethod
    def local(cls, fn: Callable[[], object], name: str | None = None) -> ModelSpec:
        """Wrap a simulator function (it travels by cloudpickle)."""
        return cls("local", fn, {"name": name})

    def build(self) -> Model:
        """A new model from this spec."""
        target = self.target
        if self.kind == "local" and callable(target):
            return LocalModel(target, **self.options)
        if self.kind == "connect" and isinstance(target, str):
            return RemoteModel(target, **self.options)
        if self.kind == "spawn" and not isinstance(target, str) and not callable(target):
            return RemoteModel.spawn(target, **self.options)
        raise TypeError(f"a {self.kind!r} ModelSpec cannot be built from {target!r}")

    def describe(self) -> SimulatorInfo:
        """The simulator, for provenance: the model's own description when this process built
        it (a served simulator's name is known from its handshake), else the recipe's."""
        with _LOCK:
            model = _BUILT.get(self.key)
        if model is not None:
            return model.describe()
        target = self.target
        if callable(target):
            return LocalModel(target, **self.options).describe()
        if isinstance(target, str):
            return SimulatorInfo(address=target)
        return SimulatorInfo(argv=list(target))

    def release(self) -> None:
        """Close and forget this process's model for this spec, if there is one."""
        with _LOCK:
            model = _BUILT.pop(self.key, None)
        if model is not None:
            model.close()

    def cached(self) -> Model:
        """This process's model for this spec, built on first use and kept."""
        with _LOCK:
            model = _BUILT.get(self.key)
            if model is None:
                model = _BUILT[self.key] = self.build()
            return model


@atexit.register
def _close_built_models() -> None:
    for model in _BUILT.values():
        model.close()
    _BUILT.clear()
