"""Griffe extension for the docs build (mkdocs.yml): shows docstring doctests as code.

The package's docstrings end with an unindented `Example:` line followed by doctest lines
(`>>> ...` and their expected output), which Markdown would otherwise render as running text
(and mkdocs-autorefs reads `[a][b]` in outputs as broken cross-references). This extension
turns each such run into a fenced `pycon` block and drops `# doctest:` flags.
"""

from __future__ import annotations

import re

import griffe

_DOCTEST_FLAGS = re.compile(r"\s*#\s*doctest:.*$")
_EXAMPLE_HEADER = re.compile(r"^(\s*)(Examples?):\s*$")


def fence_doctests(text: str) -> str:
    """Wrap every run of doctest lines in a ```pycon fence.

    A run starts at a `>>>` line and ends at a blank line or at a line indented less than
    the run's first line. An `Example:` header line becomes bold text, so that the Google
    parser does not expect an indented section under it.

    Example:
    >>> fence_doctests("Example:\\n>>> 1 + 1\\n2").split("\\n")
    ['**Example:**', '', '```pycon', '>>> 1 + 1', '2', '```']
    """
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        header = _EXAMPLE_HEADER.match(line)
        if header:
            out.append(f"{header.group(1)}**{header.group(2)}:**")
            i += 1
            continue
        if not line.lstrip().startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        if out and out[-1].strip():
            out.append("")  # a fence must not continue a paragraph
        out.append(f"{indent}```pycon")
        while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
            out.append(_DOCTEST_FLAGS.sub("", lines[i]))
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Applies `fence_doctests` to every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
