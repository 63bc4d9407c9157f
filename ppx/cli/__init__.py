"""The ``ppx`` command line (typer): ``serve``, ``prior``, ``infer``, ``plot`` and ``sbi``.

The application is assembled in :mod:`ppx.cli.main`; shared options and model
recipes live in :mod:`ppx.cli.common`, the commands in :mod:`ppx.cli.commands`
and :mod:`ppx.cli.sbi`, tables and plots in :mod:`ppx.cli.report`.
"""
