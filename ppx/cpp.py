"""Build and run the C++ simulators of ``simulators/cpp`` (the header-only C++ client).

``cpp_simulator("gaussian")`` builds them once (CMake, incrementally) and returns
the argv that serves one, for :meth:`ppx.RemoteModel.spawn`::

    with ppx.RemoteModel.spawn(ppx.cpp.cpp_simulator("gaussian")) as model:
        trace = model.run()

The build needs cmake, a C++17 compiler, libzmq and the flatbuffers headers
2.0.8 (Debian/Ubuntu: ``cmake g++ libzmq3-dev libflatbuffers-dev``); it is the
same as ``cmake -S simulators/cpp -B build/cpp && cmake --build build/cpp``.
``sanitize=True`` builds them with AddressSanitizer and UndefinedBehaviorSanitizer
(``-DPPX_SANITIZE=ON``) in a folder of their own, ``build/cpp-sanitize``.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "CppBuildError",
    "SIMULATORS",
    "build_cpp_simulators",
    "cpp_simulator",
    "default_build_dir",
    "missing_toolchain",
]


# simulators/cpp in a checkout, ppx/simulators/cpp when installed (found without importing).
def _source() -> Path:
    spec = importlib.util.find_spec("ppx.simulators")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("cannot locate the ppx.simulators package (and its cpp/ sources)")
    return Path(spec.submodule_search_locations[0]) / "cpp"


SOURCE = _source()
#: The programs the build makes; all but ``pingpong`` are PPX simulators.
SIMULATORS = ("gaussian", "branching", "rejection", "faulty", "truncated", "roundtrip", "pingpong")

# What the build needs: (what to look for, the Debian package that provides it).
_TOOLS = (("cmake", "cmake"), ("c++", "g++"))
_HEADERS = (("zmq.h", "libzmq3-dev"), ("flatbuffers/flatbuffers.h", "libflatbuffers-dev"))


class CppBuildError(RuntimeError):
    """The C++ simulators could not be built; the message says what is missing or failed."""


def default_build_dir() -> Path:
    """``build/cpp`` in a source checkout, else ``~/.cache/ppx/cpp`` (``$PPX_CPP_BUILD_DIR``)."""
    if "PPX_CPP_BUILD_DIR" in os.environ:
        return Path(os.environ["PPX_CPP_BUILD_DIR"])
    checkout = SOURCE.parent.parent
    if (checkout / "pyproject.toml").exists() and os.access(checkout, os.W_OK):
        return checkout / "build" / "cpp"
    return Path.home() / ".cache" / "ppx" / "cpp"


def missing_toolchain() -> str | None:
    """Why the C++ simulators cannot be built here (naming the package), or ``None``."""
    if not (SOURCE / "CMakeLists.txt").exists():
        return f"the C++ sources are not installed (no {SOURCE / 'CMakeLists.txt'})"
    for tool, package in _TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} not found (Debian/Ubuntu: apt-get install {package})"
    for header, package in _HEADERS:
        if not _compiles(f"#include <{header}>\n"):
            return f"{header} not found (Debian/Ubuntu: apt-get install {package})"
    return None


def _compiles(source: str) -> bool:
    """Whether the C++ preprocessor accepts ``source`` (finds its headers)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "probe.cpp")
        path.write_text(source)
        done = subprocess.run(
            ["c++", "-std=c++17", "-E", str(path), "-o", os.devnull], capture_output=True
        )
    return done.returncode == 0


def build_cpp_simulators(
    build_dir: str | os.PathLike | None = None,
    *,
    sanitize: bool = False,
    targets: Sequence[str] = (),
) -> Path:
    """Build (or bring up to date) the C++ simulators; return the folder of the programs.

    Arguments:
        build_dir: CMake's build folder (default: :func:`default_build_dir`,
            with ``-sanitize`` appended for a sanitized build).
        sanitize: build with AddressSanitizer and UndefinedBehaviorSanitizer.
        targets: build only these programs (default: all of :data:`SIMULATORS`).

    Raises:
        CppBuildError: a tool or header is missing (naming the Debian package),
            or CMake failed (with the end of its output).
    """
    missing = missing_toolchain()
    if missing is not None:
        raise CppBuildError(f"cannot build the C++ simulators: {missing}")
    unknown = sorted(set(targets) - set(SIMULATORS))
    if unknown:
        raise ValueError(f"unknown C++ programs {unknown}; choose from {', '.join(SIMULATORS)}")
    build = Path(build_dir) if build_dir is not None else default_build_dir()
    if build_dir is None and sanitize:
        build = build.with_name(build.name + "-sanitize")
    build.mkdir(parents=True, exist_ok=True)
    sanitizing = f"-DPPX_SANITIZE={'ON' if sanitize else 'OFF'}"
    only = ["--target", *targets] if targets else []
    with open(build / ".ppx-build.lock", "w") as lock:  # one build at a time per folder
        fcntl.flock(lock, fcntl.LOCK_EX)
        _cmake(["-S", str(SOURCE), "-B", str(build), sanitizing])
        _cmake(["--build", str(build), "-j", "2", *only])
    return build / "bin"


def _cmake(arguments: list[str]) -> None:
    done = subprocess.run(["cmake", *arguments], capture_output=True, text=True)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-4000:]
        raise CppBuildError(f"cmake {' '.join(arguments)} failed:\n{output}")


@functools.cache
def _built(build_dir: Path | None, sanitize: bool) -> Path:
    return build_cpp_simulators(build_dir, sanitize=sanitize)


def cpp_simulator(
    name: str,
    *args: str,
    build_dir: str | os.PathLike | None = None,
    sanitize: bool = False,
) -> list[str]:
    """The argv serving the C++ simulator ``name`` (built on first use), for ``spawn``.

    Arguments:
        name: one of :data:`SIMULATORS` (``"gaussian"``, ``"branching"``, ...).
        args: further command-line arguments of the program.
        build_dir: CMake's build folder (default: :func:`default_build_dir`).
        sanitize: the AddressSanitizer and UndefinedBehaviorSanitizer build.
    """
    if name not in SIMULATORS:
        raise ValueError(f"unknown C++ simulator {name!r}; choose from {', '.join(SIMULATORS)}")
    folder = _built(None if build_dir is None else Path(build_dir), sanitize)
    return [str(folder / name), *args]
