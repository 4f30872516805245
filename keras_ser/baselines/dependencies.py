"""The optional packages of the baselines, imported on first use.

`keras_ser.baselines` needs openSMILE and scikit-learn, which are not
dependencies of the model zoo; they come with the `baselines` extra.
scikit-learn is imported only when a function needs it, openSMILE only in
the extraction's child interpreter, so the package itself imports with numpy
alone, and a missing one is an `ImportError` that says what to install.
"""

import importlib
import importlib.metadata
import importlib.util

INSTALL_HINT = "pip install 'keras-ser[baselines]'"

# import name -> distribution name on PyPI
_DISTRIBUTIONS = {"opensmile": "opensmile", "sklearn": "scikit-learn"}


def require(module_name):
    """Imports and returns `module_name`, or raises an `ImportError` naming the extra.

    Args:
        module_name: str, e.g. `"opensmile"` or `"sklearn.svm"`.

    Example:

    >>> svm = require("sklearn.svm")   # doctest: +SKIP
    """
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise _missing(module_name.split(".")[0], f"import {module_name!r} failed: {error}") from error


def _missing(module_name, reason):
    distribution = _DISTRIBUTIONS.get(module_name, module_name)
    return ImportError(
        f"keras_ser.baselines needs the package '{distribution}' ({reason}). "
        f"Install the baselines extra: {INSTALL_HINT}"
    )


def package_dir(module_name):
    """The folder of an installed top-level package, found without importing it.

    Raises an `ImportError` naming the extra when the package is not installed.
    """
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.submodule_search_locations:
        raise _missing(module_name, f"{module_name!r} is not installed")
    return list(spec.submodule_search_locations)[0]


def version(module_name):
    """The installed version of a top-level package's distribution, read from its metadata."""
    package_dir(module_name)
    return importlib.metadata.version(_DISTRIBUTIONS.get(module_name, module_name))
