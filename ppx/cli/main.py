"""The ``ppx`` application: the top-level commands plus the ``sbi`` group.

Every error a user can fix (a bad option, a simulator that will not start or
answer, an optional package not installed) is one line on stderr with exit
code 2; Ctrl-C exits with 130. Only a bug in PPX itself shows a traceback.
"""

from __future__ import annotations

import sys

import click
import typer

from ppx.cli.commands import app
from ppx.cli.gradients import app as grad_app
from ppx.cli.keys import keys
from ppx.cli.provenance import provenance
from ppx.cli.sbi import app as sbi_app
from ppx.cli.sets import app as sets_app
from ppx.errors import PPXError, SimulatorCrashed

__all__ = ["app", "main"]

app.add_typer(sbi_app, name="sbi")
app.add_typer(grad_app, name="grad")
app.add_typer(sets_app, name="sets")
app.command()(provenance)
app.command()(keys)

#: What click raises for a bad command line (typer >= 0.22 vendors click as ``typer._click``).
_USAGE_ERRORS = (click.ClickException, getattr(typer, "TyperException", click.ClickException))
_ABORTS = (click.exceptions.Abort, typer.Abort)

#: Optional packages (their import names) and the extra of ``ppx-engine`` that brings them.
_EXTRAS = {"sbi": "sbi", "pythia8mc": "pythia", "pythia8": "pythia", "dask_jobqueue": "hpc"}


def main(args: list[str] | None = None) -> None:
    """Entry point of ``ppx`` and ``python -m ppx.cli``."""
    try:
        code = app(args=args, prog_name="ppx", standalone_mode=False)
    except _USAGE_ERRORS as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # a bare ``ppx`` or group: its help
            click.echo(error.format_message())  # type: ignore[attr-defined]
            sys.exit(0)
        context = getattr(error, "ctx", None)
        where = context.command_path if context is not None else "ppx"
        message = error.format_message()  # type: ignore[attr-defined]
        _fail(f"{where}: {message} (see {where} --help)", getattr(error, "exit_code", 2))
    except _ABORTS:
        _fail("interrupted", 130)
    except SimulatorCrashed as error:  # the message ends with the simulator's stderr
        click.echo(f"ppx: {error}", err=True)
        sys.exit(2)
    except PPXError as error:  # a simulator that did not start, answer or run
        _fail(f"ppx: {error}", 2)
    except ModuleNotFoundError as error:
        extra = _EXTRAS.get((error.name or "").partition(".")[0])
        if extra is None:
            raise
        _fail(
            f"ppx: this needs the optional package {error.name!r}: pip install "
            f"'ppx-engine[{extra}]' (in a clone: pip install -e '.[{extra}]')",
            2,
        )
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    click.echo(" ".join(message.split()), err=True)
    sys.exit(code)
