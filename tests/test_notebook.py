"""examples/quickstart.ipynb: committed without outputs, in step with its generator, and executed.

The execution runs every cell with nbclient on a `python3` kernel of this
interpreter (jupyter_client starts a kernelspec whose command is `python`
with `sys.executable`; the test checks the kernel's `sys.prefix`), in a
temporary working directory, with TMPDIR pointing there too, so the
notebook's temporary folders go away with the test.
"""

import importlib.util
import os
import re
import sys
import time

import pytest

from conftest import ROOT

NOTEBOOK = os.path.join(ROOT, "examples", "quickstart.ipynb")
GENERATOR = os.path.join(ROOT, "examples", "make_quickstart.py")
CELL_TIMEOUT = 600  # seconds per cell; the whole notebook takes about a minute on 2 cores
SYNTHETIC_CLASSES = ("anger", "happiness", "neutral", "sadness")

nbformat = pytest.importorskip("nbformat")


def _read():
    with open(NOTEBOOK, encoding="utf-8") as handle:
        return nbformat.read(handle, as_version=4)


def _generator():
    spec = importlib.util.spec_from_file_location("make_quickstart", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_notebook_is_stripped():
    notebook = _read()
    nbformat.validate(notebook)
    dirty = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            if cell.get("outputs"):
                dirty.append(f"cell {index}: {len(cell.outputs)} output(s)")
            if cell.get("execution_count") is not None:
                dirty.append(f"cell {index}: execution_count {cell.execution_count}")
        if set(cell.get("metadata", {})) & {"execution", "collapsed", "scrolled"}:
            dirty.append(f"cell {index}: metadata {sorted(cell.metadata)}")
    assert not dirty, ("examples/quickstart.ipynb must be committed without outputs; regenerate it with "
                       "`python examples/make_quickstart.py`: " + "; ".join(dirty))


def test_committed_notebook_matches_its_generator():
    assert _read() == _generator().build(), (
        "examples/quickstart.ipynb differs from examples/make_quickstart.py: edit the cells in the generator and "
        "run `python examples/make_quickstart.py`")


def _text(outputs):
    parts = []
    for output in outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    pytest.importorskip("ipykernel")
    nbclient = pytest.importorskip("nbclient")

    # The kernel inherits this environment: this working tree's packages first, temporary files under tmp_path.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    notebook = _read()
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; print('kernel prefix:', sys.prefix)",
                                                    id="test-kernel-prefix"))
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.monotonic()
    client.execute()  # raises CellExecutionError (with the cell and its traceback) if a cell fails
    seconds = time.monotonic() - start

    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    errors = [output for cell in code_cells for output in cell.outputs if output.output_type == "error"]
    assert not errors, errors
    text = "\n".join(_text(cell.outputs) for cell in code_cells)
    print(f"notebook executed in {seconds:.0f} s")

    kernel_prefix = re.search(r"kernel prefix: (.+)", text).group(1).strip()
    assert os.path.realpath(kernel_prefix) == os.path.realpath(sys.prefix), (kernel_prefix, sys.prefix)

    assert re.search(r"corpus: 48 utterances, 3 speakers \(01, 02, 03\), 4 classes", text), text
    assert re.search(r"test speaker 01: WA \d+\.\d %, UA \d+\.\d %", text), text
    assert re.search(r"Epoch 20/20", text), text
    # The confusion plot is a figure in the outputs.
    assert any("image/png" in output.get("data", {}) for cell in code_cells for output in cell.outputs)
    # The pretrained preset names its probabilities by EMO-DB class.
    assert re.search(r"^\s+boredom\s+\d\.\d{3}$", text, re.MULTILINE), text
    answer = re.search(r"server answer: (\S+) -> (\w+) \(true label (\w+), model version 1\)", text)
    assert answer, text
    assert answer.group(2) in SYNTHETIC_CLASSES and answer.group(3) in SYNTHETIC_CLASSES, answer.group(0)
    difference = float(re.search(r"largest difference to model.predict in this notebook: (\S+)", text).group(1))
    assert difference < 1e-4
    # The notebook's temporary folders went under tmp_path, not the shared temporary directory.
    assert re.search(re.escape(str(tmp_path)) + r"\S*keras_ser_quickstart_", text), text
