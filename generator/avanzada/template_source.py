"""Where the Copier template that avanzada renders lives.

Two layouts exist. In a source checkout the package sits at
``<root>/generator/avanzada`` and the template is ``<root>/copier.yml`` plus
``<root>/template/``. An installed wheel carries a copy of both under
``avanzada/_template/`` (see ``force-include`` in ``pyproject.toml``).
``$AVANZADA_TEMPLATE`` names another template root, for template development
and for tests.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming another template root (a fork, a work in progress).
TEMPLATE_ENV = "AVANZADA_TEMPLATE"

#: Files and folders that make up the template, relative to its root.
TEMPLATE_ENTRIES = ("copier.yml", "template")

_PACKAGE_DIR = Path(__file__).resolve().parent


class TemplateNotFoundError(RuntimeError):
    """Neither a checkout nor a bundled copy of the template was found."""


def is_template_root(path: Path) -> bool:
    """Tell whether ``path`` holds ``copier.yml`` and the ``template/`` folder."""
    return (path / "copier.yml").is_file() and (path / "template").is_dir()


def template_root() -> Path:
    """Return the folder that holds ``copier.yml`` and ``template/``.

    ``$AVANZADA_TEMPLATE`` wins when set. Otherwise the bundled copy wins when
    present: an installed wheel must never pick up an unrelated checkout that
    merely happens to surround its site-packages.
    """
    override = os.environ.get(TEMPLATE_ENV)
    if override:
        root = Path(override).expanduser().resolve()
        if not is_template_root(root):
            raise TemplateNotFoundError(
                f"${TEMPLATE_ENV} is {override!r}, which does not hold copier.yml and template/"
            )
        return root
    bundled = _PACKAGE_DIR / "_template"
    if is_template_root(bundled):
        return bundled
    # A checkout: generator/avanzada -> generator -> repository root.
    checkout = _PACKAGE_DIR.parents[1]
    if is_template_root(checkout):
        return checkout
    raise TemplateNotFoundError(
        f"cannot find the avanzada template: neither {bundled} nor {checkout} "
        "holds copier.yml and template/; reinstall avanzada"
    )
