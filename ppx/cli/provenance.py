"""``ppx provenance FILE``: what produced a file PPX wrote (seed, simulator, versions).

Reads the record of any file PPX writes (a posterior, a simulation or ensemble
store, a trace dataset folder, a network, a checkpoint, an sbi posterior, a set
estimator) without loading what the file holds (:func:`ppx.provenance.read`),
and prints it as a table, or as JSON with ``--json``.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ppx.cli.common import console
from ppx.provenance import Provenance, ProvenanceError, read

__all__ = ["provenance"]

_WAYS = ("function", "address", "data")


def provenance(
    file: Annotated[
        Path, typer.Argument(help="a file PPX wrote, or a trace dataset folder", show_default=False)
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print the record as JSON")] = False,
) -> None:
    """Show what produced a file PPX wrote: seed, simulator, command, host and versions."""
    try:
        record = read(file)
    except (OSError, ProvenanceError) as error:
        raise typer.BadParameter(str(error), param_hint="FILE") from None
    if as_json:
        typer.echo(json.dumps(record.to_dict(), indent=2))
        return
    console.print(_table(record, f"provenance of {file}"), soft_wrap=True)


def _table(record: Provenance, title: str) -> Table:
    """The record's fields, one a row; each later job that added to the file, one a row."""
    table = Table(title=escape(title), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for field, value in _rows(record):
        table.add_row(field, escape(value))
    for number, later in enumerate(record.appends, start=1):
        table.add_row(f"appended ({number})", escape(_job_text(later)))
    return table


def _rows(record: Provenance) -> list[tuple[str, str]]:
    simulator = record.simulator
    rows = [
        ("seed", "not recorded" if record.seed is None else str(record.seed)),
        ("simulator", simulator.get("name", "not recorded")),
    ]
    if "argv" in simulator:
        rows.append(("argv", shlex.join(simulator["argv"])))
    rows += [(way, str(simulator.get(way))) for way in _WAYS if way in simulator]
    rows += [
        ("created", record.created),
        ("command", shlex.join(record.command)),
        ("host", record.host),
        ("ppx", record.ppx_version),
        ("protocol", record.protocol_version),
    ]
    return rows + list(record.libraries.items())


def _job_text(record: Provenance) -> str:
    seed = "no seed" if record.seed is None else f"seed {record.seed}"
    return f"{record.created} on {record.host}, {seed}: {shlex.join(record.command)}"
