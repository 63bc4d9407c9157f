"""Describing a simulator-side exception: type, message and where in the simulator."""

from __future__ import annotations

import traceback

__all__ = ["describe_exception", "raising_site"]

_PPX_INTERNAL = ("/ppx/runtime.py", "/ppx/primitives.py", "/ppx/server.py", "/ppx/model.py")


def raising_site(error: BaseException) -> str:
    """``file:line in function`` of the innermost simulator frame that raised.

    Frames inside torch and PPX itself are skipped, so an invalid
    ``Normal(0, -1)`` points at the simulator line that built it.
    """
    site = ""
    for frame in traceback.extract_tb(error.__traceback__):
        path = frame.filename.replace("\\", "/")
        if "/torch/" in path or "/pyro/" in path or path.endswith(_PPX_INTERNAL):
            continue
        site = f"{frame.filename}:{frame.lineno} in {frame.name}"
    return site


def describe_exception(error: BaseException, last_address: str) -> str:
    """A one-paragraph description for the engine's exception message."""
    where = raising_site(error)
    text = f"{type(error).__name__}: {error}"
    if where:
        text += f" (raised at {where})"
    if last_address:
        text += f"; last draw recorded at address {last_address!r}"
    return text
