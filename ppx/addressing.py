"""Stable addresses for random draws.

An address names a draw so that it is the same in every run of the program:
inference compilation and MCMC match draws across runs by address.

The scheme (pyprob's, minus bytecode offsets):

* The simulator side makes a **base address**: the explicit ``name`` when one
  is given, otherwise the call site ``module.qualname:line`` of the
  ``ppx.sample``/``ppx.observe`` call (``__main__`` is replaced by the module's
  import name, so ``python -m pkg.mod`` and ``import pkg.mod`` agree). Enclosing
  ``ppx.scope("prefix")`` blocks prepend ``prefix/``. The base travels on the
  wire as the message's ``address`` string.
* The engine side appends the distribution kind and an instance counter,
  counting draws with the same base and kind within one run from 1:
  ``base__Normal__1``, ``base__Normal__2``, ... exactly as pyprob does
  (``Categorical(len_probs:K)`` for a K-way categorical). Addresses arriving
  from other peers (C++, pyprob_cpp) are opaque strings used as given.

Line numbers change when the simulator's source is edited, as pyprob's bytecode
offsets did; give names to draws whose identity must survive edits.
"""

from __future__ import annotations

import sys
from types import FrameType

import torch

from ppx.protocol import distribution_kind

__all__ = ["address_stem", "call_site", "distribution_suffix", "full_address", "split_address"]

_SITE_CACHE: dict[tuple[object, int], str] = {}


def _module_name(frame: FrameType) -> str:
    module = frame.f_globals.get("__name__", "?")
    if module == "__main__":
        spec = frame.f_globals.get("__spec__")
        if spec is not None and spec.name:
            return spec.name.removesuffix(".__main__")
        path = frame.f_code.co_filename
        return path.rsplit("/", 1)[-1].removesuffix(".py")
    return module


def call_site(depth: int) -> str:
    """The base address ``module.qualname:line`` of the frame ``depth`` levels up.

    Arguments:
        depth: frames above the caller of ``call_site`` (1 = the caller's caller).
    """
    frame = sys._getframe(depth + 1)
    key = (frame.f_code, frame.f_lineno)
    site = _SITE_CACHE.get(key)
    if site is None:
        code = frame.f_code
        qualname = getattr(code, "co_qualname", code.co_name)
        site = f"{_module_name(frame)}.{qualname}:{frame.f_lineno}"
        _SITE_CACHE[key] = site
    return site


_SUFFIX_CACHE: dict[type, str] = {}


def distribution_suffix(distribution: torch.distributions.Distribution | None) -> str:
    """pyprob's address suffix of a distribution: its kind, plus K for a categorical."""
    if distribution is None:
        return "None"
    if isinstance(distribution, torch.distributions.Categorical):
        return f"Categorical(len_probs:{distribution.probs.shape[-1]})"
    kind = type(distribution)
    suffix = _SUFFIX_CACHE.get(kind)
    if suffix is None:
        try:
            suffix = distribution_kind(distribution)
        except TypeError:  # not carried by the codec: fine in-process
            suffix = kind.__name__
        _SUFFIX_CACHE[kind] = suffix
    return suffix


def full_address(stem: str, instance: int) -> str:
    """``stem__instance``: the engine-side address of one draw (see :func:`address_stem`)."""
    return f"{stem}__{instance}"


def address_stem(base: str, distribution: torch.distributions.Distribution | None) -> str:
    """``base__suffix``: the address of a draw without its instance number."""
    return f"{base}__{distribution_suffix(distribution)}"


def split_address(address: str) -> tuple[str, int] | None:
    """``("base__Kind", instance)`` of a full address; None for a name or base."""
    stem, sep, instance = address.rpartition("__")
    if not sep or "__" not in stem or not instance.isdigit():
        return None
    return stem, int(instance)
