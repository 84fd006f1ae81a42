"""The docs build's griffe extension (scripts/docs_doctest_blocks.py) fences docstring doctests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.backend_agnostic
pytest.importorskip("griffe", reason="griffe comes with the [docs] extra")

_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "docs_doctest_blocks.py"
_spec = importlib.util.spec_from_file_location("docs_doctest_blocks", _SCRIPT)
docs_doctest_blocks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_doctest_blocks)
fence_doctests = docs_doctest_blocks.fence_doctests


def test_a_doctest_run_after_an_example_header_becomes_one_pycon_fence():
    text = "Sum.\n\nExample:\n>>> f([1, 2])\n[3]\n\nMore text."
    assert fence_doctests(text).split("\n") == [
        "Sum.", "", "**Example:**", "", "```pycon", ">>> f([1, 2])", "[3]", "```", "",
        "More text.",
    ]


def test_doctest_flags_are_dropped_and_indentation_is_kept():
    text = "Args:\n    x: y.\n    >>> g()  # doctest: +SKIP\n    1"
    assert fence_doctests(text).split("\n") == [
        "Args:", "    x: y.", "", "    ```pycon", "    >>> g()", "    1", "    ```",
    ]


def test_text_without_doctests_is_unchanged():
    text = "No examples here.\n\n    indented code\n"
    assert fence_doctests(text) == text
