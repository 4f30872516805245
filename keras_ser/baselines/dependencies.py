"""The optional packages of the baselines, imported on first use.

`keras_ser.baselines` needs openSMILE and scikit-learn, which are not
dependencies of the model zoo; they come with the `baselines` extra. They are
imported only when a function needs them, so the package itself imports with
numpy alone, and a missing one is an `ImportError` that says what to install.
"""

import importlib

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
        top = module_name.split(".")[0]
        distribution = _DISTRIBUTIONS.get(top, top)
        raise ImportError(
            f"keras_ser.baselines needs the package '{distribution}' (import {module_name!r} failed: {error}). "
            f"Install the baselines extra: {INSTALL_HINT}"
        ) from error
