"""The top-level packages stack in one direction, following the data flow.

    tf_pipeline (0) -> keras_ser (1) -> saved_models (2) -> serving (3) -> keras_ser_cli (4)

A package may import the packages of lower rank only: no upward import, at
module level or inside a function, and so no import cycle between them. The
command line (`keras_ser_cli`, the `keras-ser` entry point) is on top, and
nothing in the packages imports the experiment runners (`experiments/`) or
the benchmarks (`benchmarks/`). The check reads the source with `ast` (no
import), relative imports resolved; a string constant that names a module of
the packages (`"keras_ser_cli.demo"`, the lazy-import tables) counts as an
import too.
"""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
RANKS = {"tf_pipeline": 0, "keras_ser": 1, "saved_models": 2, "serving": 3, "keras_ser_cli": 4}
OUTSIDE = ("experiments", "benchmarks")
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def _module_name(path, root):
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _is_module(root, name):
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(path, root, packages=RANKS):
    """`(line, module)` for each import in a file: `import`, `from ... import`, anywhere in it.

    Relative imports are resolved against the file's package. A string
    constant that is the dotted name of a module of `packages` (under `root`)
    counts as an import (what `importlib.import_module` tables hold).
    """
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            found.append((node.lineno, name))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _DOTTED.fullmatch(node.value):
            if node.value.split(".")[0] in packages and _is_module(root, node.value):
                found.append((node.lineno, node.value))
    return found


def package_files(root, packages=RANKS):
    """Every .py file of the packages, by package."""
    return {package: sorted((root / package).rglob("*.py")) for package in packages}


def violations(root, ranks=RANKS, outside=OUTSIDE):
    """One line per upward import, and per import of an application folder (`outside`)."""
    found = []
    for package, files in package_files(root, ranks).items():
        for path in files:
            where = path.relative_to(root).as_posix()
            for line, name in imports(path, root, ranks):
                top = name.split(".")[0]
                if top in outside:
                    found.append(f"{where}:{line} imports {name} (rank {ranks[package]} -> {top}/, not a package)")
                elif top in ranks and ranks[top] > ranks[package]:
                    found.append(f"{where}:{line} imports {name} (rank {ranks[package]} -> rank {ranks[top]})")
    return found


def package_graph(root, packages=RANKS):
    """`{package: set of the other packages it imports}`."""
    graph = {package: set() for package in packages}
    for package, files in package_files(root, packages).items():
        for path in files:
            for _, name in imports(path, root, packages):
                top = name.split(".")[0]
                if top in packages and top != package:
                    graph[package].add(top)
    return graph


def cycles(graph):
    """The import cycles of a package graph, each as a list `[a, b, ..., a]`."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


# --------------------------------------------------------------------------
# The checker on a small fake tree: it is known to catch what it looks for
# --------------------------------------------------------------------------


def _tree(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in RANKS:
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()


def test_checker_passes_a_downward_tree(tmp_path):
    _tree(tmp_path, {
        "keras_ser/zoo.py": "import tf_pipeline.config\n",
        "saved_models/export.py": "def f():\n    from keras_ser import zoo\n    from . import warmup\n",
        "saved_models/warmup.py": "",
        "keras_ser_cli/main.py": "import serving\nTABLE = {'x': 'keras_ser_cli.main', 'y': 'saved_models.export'}\n",
    })
    assert violations(tmp_path) == []
    assert cycles(package_graph(tmp_path)) == []
    assert package_graph(tmp_path)["keras_ser_cli"] == {"serving", "saved_models"}


def test_checker_catches_upward_imports(tmp_path):
    _tree(tmp_path, {
        "tf_pipeline/audio.py": "import os\n\nimport keras_ser.zoo\n",
        # Inside a function counts too.
        "keras_ser/training/loso.py": "def run():\n    from saved_models.export import export\n",
        "keras_ser/training/__init__.py": "from .loso import run\n",
        "saved_models/export.py": "TABLE = {'serve': 'keras_ser_cli.serve_local'}\n",
        "keras_ser_cli/serve_local.py": "",
        "serving/client.py": "import experiments.reproduce\n",
    })
    assert sorted(violations(tmp_path)) == [
        "keras_ser/training/loso.py:2 imports saved_models.export (rank 1 -> rank 2)",
        "saved_models/export.py:1 imports keras_ser_cli.serve_local (rank 2 -> rank 4)",
        "serving/client.py:1 imports experiments.reproduce (rank 3 -> experiments/, not a package)",
        "tf_pipeline/audio.py:3 imports keras_ser.zoo (rank 0 -> rank 1)",
    ]


def test_checker_resolves_relative_imports(tmp_path):
    _tree(tmp_path, {"keras_ser/training/loso.py": "from . import recipes\nfrom ..zoo import build_model\n",
                     "keras_ser/training/__init__.py": "from .loso import run\nfrom .. import zoo\n"})
    assert imports(tmp_path / "keras_ser/training/loso.py", tmp_path) == [
        (1, "keras_ser.training"), (2, "keras_ser.zoo")]
    assert imports(tmp_path / "keras_ser/training/__init__.py", tmp_path) == [
        (1, "keras_ser.training.loso"), (2, "keras_ser")]


def test_checker_catches_cycles(tmp_path):
    _tree(tmp_path, {"tf_pipeline/a.py": "import keras_ser\n", "keras_ser/b.py": "import tf_pipeline\n",
                     "serving/c.py": "import saved_models\n", "saved_models/d.py": "import serving.c\n"})
    assert cycles(package_graph(tmp_path)) == [["keras_ser", "tf_pipeline", "keras_ser"],
                                               ["saved_models", "serving", "saved_models"]]


# --------------------------------------------------------------------------
# The repository
# --------------------------------------------------------------------------


def test_every_package_is_there_and_parses():
    files = package_files(ROOT)
    for package, paths in files.items():
        assert (ROOT / package / "__init__.py") in paths, package
        for path in paths:
            imports(path, ROOT)  # a syntax error fails here
    assert not (ROOT / "keras_ser" / "cli").exists(), "the CLI is the top-level package keras_ser_cli"


def test_no_upward_import():
    assert violations(ROOT) == []


def test_no_import_cycle_between_packages():
    graph = package_graph(ROOT)
    assert cycles(graph) == []
    assert graph["tf_pipeline"] == set()
    assert graph["keras_ser_cli"] >= {"keras_ser", "saved_models", "serving"}
