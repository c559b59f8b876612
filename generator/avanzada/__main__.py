"""``python -m avanzada``: the same command as the ``avanzada`` script."""

from avanzada.cli import app

app(prog_name="avanzada")
