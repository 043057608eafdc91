"""KANE's prompts: Markdown templates beside this file, read once and filled with variables."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from string import Template

_HERE = Path(__file__).parent


@cache
def _template(name: str) -> Template:
    return Template((_HERE / f"{name}.md").read_text(encoding="utf-8").strip())


def render(name: str, **variables: str) -> str:
    """Fill the template `prompts/<name>.md` with `variables` (``$name`` placeholders).

    Args:
        name: The template's file name without `.md`.
        **variables: Values for its placeholders; a missing one raises `KeyError`.
    """
    return _template(name).substitute(variables)
