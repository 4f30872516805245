"""The top-level packages stack in one direction, following the data flow; their modules form no circle.

    tf_pipeline (0) -> keras_ser (1) -> saved_models (2) -> serving (3) -> keras_ser_cli (4)

A package may import the packages of lower rank only: no upward import, at
module level or inside a function, and so no import cycle between them. The
command line (`keras_ser_cli`, the `keras-ser` entry point) is on top, and
nothing in the packages imports the experiment runners (`experiments/`) or
the benchmarks (`benchmarks/`). Inside the packages, no two modules import
each other, directly or round a longer circle, at module level or inside a
function (a lazy import is still a circle); and no module uses another
module's private names (`from x import _name`, `x._name`): what is shared is
public and documented. The checks read the source with `ast` (no import),
relative imports resolved; a string constant that names a module of the
packages (`"keras_ser_cli.demo"`, the lazy-import tables) counts as an
import too. A module's import of a submodule does not count as an import of
the parent package (every package imports its own modules).
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


def module_name(path, root):
    """The dotted module name of a file (`keras_ser/models/__init__.py` -> `keras_ser.models`)."""
    return ".".join(_module_name(path, root))


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _parse(path, root):
    """`(module, package parts, ast tree)` of a file."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module[:-1]
    return ".".join(module), package, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _from_base(node, package):
    if node.level:
        return ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    return node.module


def module_graph(root, packages=RANKS):
    """`{module: set of the modules of the packages it imports}`, every import of the file (lazy ones too).

    `from a import b` is an import of the module `a.b` when there is one,
    else of `a`; `import a.b` of `a.b`; a string constant naming a module
    of the packages is an import of it. Importing a module does not count
    as importing its parent packages.
    """
    graph = {}
    for files in package_files(root, packages).values():
        for path in files:
            module, package, tree = _parse(path, root)
            edges = graph.setdefault(module, set())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    edges.update(alias.name for alias in node.names if alias.name.split(".")[0] in packages)
                elif isinstance(node, ast.ImportFrom):
                    base = _from_base(node, package)
                    if base and base.split(".")[0] in packages:
                        for alias in node.names:
                            submodule = f"{base}.{alias.name}"
                            edges.add(submodule if _is_module(root, submodule) else base)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _DOTTED.fullmatch(node.value):
                    if node.value.split(".")[0] in packages and _is_module(root, node.value):
                        edges.add(node.value)
            edges.discard(module)
    return graph


def private_uses(root, packages=RANKS):
    """One line per use of another module's private name: `from x import _name`, or `x._name` on a module."""
    found = []
    for files in package_files(root, packages).values():
        for path in files:
            module, package, tree = _parse(path, root)
            where = path.relative_to(root).as_posix()
            aliases = {}  # local name -> module of the packages
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.split(".")[0] in packages:
                            if alias.asname:
                                aliases[alias.asname] = alias.name
                            else:
                                aliases[alias.name.split(".")[0]] = alias.name.split(".")[0]
                elif isinstance(node, ast.ImportFrom):
                    base = _from_base(node, package)
                    if not base or base.split(".")[0] not in packages:
                        continue
                    for alias in node.names:
                        if _is_module(root, f"{base}.{alias.name}"):
                            aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
                        elif _private(alias.name) and base != module:
                            found.append(f"{where}:{node.lineno} from {base} import {alias.name}")
            for node in ast.walk(tree):
                if not isinstance(node, ast.Attribute):
                    continue
                chain, base = [], node
                while isinstance(base, ast.Attribute):
                    chain.append(base.attr)
                    base = base.value
                if not isinstance(base, ast.Name) or base.id not in aliases:
                    continue
                current = aliases[base.id]
                for attr in reversed(chain):
                    if _is_module(root, f"{current}.{attr}"):
                        current = f"{current}.{attr}"
                        continue
                    if _private(attr) and current != module:
                        found.append(f"{where}:{node.lineno} {current}.{attr}")
                    break
    return sorted(set(found))


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


def test_checker_passes_modules_without_circles(tmp_path):
    _tree(tmp_path, {
        # A package imports its modules, which import their siblings and the package's other modules.
        "keras_ser/models/__init__.py": "from keras_ser.models.task import SERTask\nfrom keras_ser.models import a\n",
        "keras_ser/models/task.py": "from keras_ser.models import registry\n",
        "keras_ser/models/registry.py": "_TASKS = {}\n",
        "keras_ser/models/a.py": "from keras_ser.models.task import SERTask\n\ndef f():\n    import tf_pipeline.config\n",
        "tf_pipeline/config.py": "",
    })
    graph = module_graph(tmp_path)
    assert graph["keras_ser.models"] == {"keras_ser.models.task", "keras_ser.models.a"}
    assert graph["keras_ser.models.a"] == {"keras_ser.models.task", "tf_pipeline.config"}
    assert cycles(graph) == []


def test_checker_catches_module_circles_lazy_ones_included(tmp_path):
    _tree(tmp_path, {
        # A circle kept legal by an import inside a function.
        "keras_ser/zoo.py": "def model_class(name):\n    from keras_ser import encoder_models\n",
        "keras_ser/encoder_models.py": "from keras_ser.zoo import SERTask\n",
        # A circle through a lazy-import table (a string naming the module).
        "keras_ser_cli/main.py": "SUBCOMMANDS = {'demo': 'keras_ser_cli.demo'}\n",
        "keras_ser_cli/demo.py": "from .main import UsageError\n",
    })
    assert cycles(module_graph(tmp_path)) == [["keras_ser.encoder_models", "keras_ser.zoo", "keras_ser.encoder_models"],
                                              ["keras_ser_cli.demo", "keras_ser_cli.main", "keras_ser_cli.demo"]]


def test_checker_catches_private_names_across_modules(tmp_path):
    _tree(tmp_path, {
        "tf_pipeline/features.py": "def _check_waveform(w):\n    return w\n\nX = _check_waveform(1)\n",
        "tf_pipeline/mel_power.py": ("from tf_pipeline.features import _check_waveform, log_mel\n"
                                     "from tf_pipeline import features as feats\n"
                                     "import tf_pipeline.features\n"
                                     "Y = feats._mel(1) + tf_pipeline.features._hz(2) + feats.__doc__\n"),
        "saved_models/tflite.py": "def f(model):\n    from saved_models.export import _load_model\n    return model._run()\n",
        "saved_models/export.py": "",
    })
    assert private_uses(tmp_path) == [
        "saved_models/tflite.py:2 from saved_models.export import _load_model",
        "tf_pipeline/mel_power.py:1 from tf_pipeline.features import _check_waveform",
        "tf_pipeline/mel_power.py:4 tf_pipeline.features._hz",
        "tf_pipeline/mel_power.py:4 tf_pipeline.features._mel",
    ]


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


def test_no_import_circle_between_modules():
    graph = module_graph(ROOT)
    assert cycles(graph) == []
    assert graph["keras_ser.models.registry"] <= {"keras_ser.models.checks", "tf_pipeline.config"}


def test_no_private_name_used_across_modules():
    assert private_uses(ROOT) == []
