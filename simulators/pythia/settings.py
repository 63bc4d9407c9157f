"""Pythia settings from ``readString`` lines, ``.cmnd`` files or shipped presets.

Every line is checked when a Pythia is built, before any event runs: an unknown key
(``readString`` returns ``False``; Pythia also prints a warning) or a failed
``init()`` raises :class:`PythiaSettingsError` naming the setting and, for files,
the file and line.

Presets (``presets/NAME.cmnd``): ``ee_z_hadrons``, ``ee_z_tautau``, ``pp_z_tautau``,
``pp_ttbar``. Pythia's printing (banner, event counter, listings) is always off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pythia8mc

from .engine import DEFAULT_INIT_SEED

__all__ = [
    "PRESETS",
    "PRESET_DIR",
    "QUIET",
    "PythiaSettingsError",
    "Setting",
    "build_pythia",
    "configure",
    "describe",
    "initialise",
    "load_settings",
]

PRESET_DIR = Path(__file__).with_name("presets")
PRESETS: tuple[str, ...] = tuple(sorted(p.stem for p in PRESET_DIR.glob("*.cmnd")))

#: Lines read before the user's: no printing during init or events.
QUIET: tuple[str, ...] = (
    "Next:numberCount = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
    "Next:numberShowEvent = 0",
    "Init:showProcesses = off",
    "Init:showMultipartonInteractions = off",
    "Init:showChangedSettings = off",
    "Init:showChangedParticleData = off",
)


class PythiaSettingsError(ValueError):
    """A setting Pythia refuses, or an ``init()`` that fails."""


@dataclass(frozen=True)
class Setting:
    """One ``readString`` line and where it comes from (``"file.cmnd:12"`` or ``"line 3"``)."""

    line: str
    origin: str


def load_settings(preset_or_settings: str | Path | Sequence[str]) -> tuple[Setting, ...]:
    """Read settings from a preset name, a ``.cmnd`` path or a list of lines.

    Raises:
        PythiaSettingsError: an unknown preset or a missing file.
    """
    if isinstance(preset_or_settings, (str, Path)):
        source = str(preset_or_settings)
        if source in PRESETS:
            return _read_file(PRESET_DIR / f"{source}.cmnd")
        path = Path(source)
        if path.suffix == ".cmnd" or path.exists():
            if not path.is_file():
                raise PythiaSettingsError(f"settings file {source!r} does not exist")
            return _read_file(path)
        raise PythiaSettingsError(
            f"{source!r} is neither a preset ({', '.join(PRESETS)}) nor a .cmnd file"
        )
    return tuple(Setting(line, f"line {i}") for i, line in enumerate(preset_or_settings, 1))


def _read_file(path: Path) -> tuple[Setting, ...]:
    lines = path.read_text().splitlines()
    return tuple(Setting(line, f"{path}:{i}") for i, line in enumerate(lines, 1) if line.strip())


def configure(settings: Sequence[Setting]) -> pythia8mc.Pythia:
    """A new Pythia (no banner, quiet) that has read and accepted every setting.

    Raises:
        PythiaSettingsError: a line Pythia refuses (unknown key or bad value).
    """
    pythia = pythia8mc.Pythia("", False)
    for line in QUIET:
        pythia.readString(line)
    for setting in settings:
        if not pythia.readString(setting.line):
            raise PythiaSettingsError(
                f"Pythia refused the setting {setting.line.strip()!r} ({setting.origin}): "
                "unknown key or bad value"
            )
    return pythia


def initialise(
    pythia: pythia8mc.Pythia,
    engine: pythia8mc.RndmEngine | None = None,
    decay_handler: pythia8mc.DecayHandler | None = None,
    handled: Sequence[int] = (),
    init_seed: int = DEFAULT_INIT_SEED,
) -> pythia8mc.Pythia:
    """Install the engine and decay handler, then ``init()``; return ``pythia``.

    The caller keeps ``engine`` and ``decay_handler`` alive as long as the Pythia.

    Arguments:
        pythia: from :func:`configure`.
        engine: a Python random engine; without one, Pythia's own generator is
            seeded with ``init_seed`` (the same init stream as a
            :class:`~ppx.simulators.pythia.engine.PythiaEngine` with that seed).
        decay_handler: decays the particles ``handled``.
        handled: PDG ids sent to ``decay_handler``.
        init_seed: the seed of the ``init()`` phase without an engine.

    Raises:
        PythiaSettingsError: ``init()`` failed.
    """
    if engine is None:
        pythia.readString("Random:setSeed = on")
        pythia.readString(f"Random:seed = {init_seed}")
    else:
        pythia.setRndmEnginePtr(engine)
    if decay_handler is not None:
        pythia.setDecayPtr(decay_handler, list(handled))
    if not pythia.init():
        raise PythiaSettingsError("Pythia init() failed; see Pythia's message above")
    return pythia


def build_pythia(
    preset_or_settings: str | Path | Sequence[str],
    engine: pythia8mc.RndmEngine | None = None,
    init_seed: int = DEFAULT_INIT_SEED,
) -> pythia8mc.Pythia:
    """:func:`load_settings`, :func:`configure` and :func:`initialise` in one call.

    Raises:
        PythiaSettingsError: an unknown preset or file, a refused line, a failed ``init()``
            (the message names the settings' source).
    """
    settings = load_settings(preset_or_settings)
    pythia = configure(settings)
    try:
        return initialise(pythia, engine, init_seed=init_seed)
    except PythiaSettingsError as error:
        raise PythiaSettingsError(f"{error} (settings: {describe(preset_or_settings)})") from None


def describe(preset_or_settings: str | Path | Sequence[str]) -> str:
    """A short description of where settings come from, for error messages."""
    if isinstance(preset_or_settings, (str, Path)):
        return str(preset_or_settings)
    return f"{len(preset_or_settings)} readString lines"
