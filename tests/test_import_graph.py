"""The package import graph has no cycles (scripts/import_graph.py, read with ast)."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.backend_agnostic

ROOT = Path(__file__).resolve().parents[1]


def _import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts/import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the dataclass in it looks its module up
    spec.loader.exec_module(module)
    return module


def test_no_package_level_import_cycle():
    text, cycles = _import_graph().report(ROOT)
    assert cycles == 0, text


def test_a_cycle_dodged_inside_a_function_is_found(tmp_path):
    package = tmp_path / "keras_pbasr"
    for name, body in {
        "__init__.py": "",
        "a/__init__.py": "from keras_pbasr.b.two import g\n",
        "b/__init__.py": "",
        "b/two.py": "def g():\n    from keras_pbasr.a import f\n",
    }.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(textwrap.dedent(body))
    graph = _import_graph()
    text, cycles = graph.report(tmp_path)
    assert cycles == 1, text
    assert "{keras_pbasr.a, keras_pbasr.b}" in text
    assert "keras_pbasr.b.two:2 -> keras_pbasr.a (in a function)" in text
