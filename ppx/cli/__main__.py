"""``python -m ppx.cli``: the ``ppx`` command."""

from ppx.cli.main import main

main()
