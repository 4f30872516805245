"""The suite's own machinery in tests/conftest.py: the tests it starts first exist, the collector skips the imports."""

import ast
import gc
import os

from conftest import LONGEST_FIRST
from conftest import ROOT
from conftest import wav_bytes


def test_every_test_started_first_exists():
    """A renamed or removed test would silently fall out of `LONGEST_FIRST`: each entry names a test function
    of its module (and parameter values written there)."""
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
    for nodeid in LONGEST_FIRST:
        path, name = nodeid.split("::")
        with open(os.path.join(ROOT, path)) as handle:
            source = handle.read()
        functions = {node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}
        function, _, parameters = name.partition("[")
        assert function in functions, nodeid
        # A parametrised entry: each part of its id is a value written in the module.
        for value in filter(None, parameters.rstrip("]").split("-")):
            assert f'"{value}"' in source, nodeid


def test_collection_froze_what_it_imported():
    """`pytest_collection_finish` froze the objects alive after collection (in the full suite TensorFlow and
    Keras among them), so full collections no longer scan them; removing the hook fails this."""
    assert gc.get_freeze_count() > 10_000
    # A function conftest defined before collection is in the frozen generation, not in those collected.
    assert gc.is_tracked(wav_bytes)
    assert not any(obj is wav_bytes for obj in gc.get_objects())
