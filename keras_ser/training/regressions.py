"""The probe's regressions: standardisation + multinomial logistic regression (scikit-learn), and their UA.

What `keras_ser.training.frozen.fit_probe` fits, here on its own because
its inner folds run in joblib worker processes. A function of an
importable module reaches a worker by reference, and the worker imports
its module, which for a module of `keras_ser` means the package with
TensorFlow: about 6 s of CPU and 0.8 GB per worker on 2 cores (`python
benchmarks/probe_workers.py`). The functions of this module travel by
value instead (registered with joblib's cloudpickle at the end of this
module) and use numpy and scikit-learn only, so a worker imports those and
nothing of keras-ser.

Example:

>>> rng = np.random.default_rng(0)
>>> y = np.tile([0, 1], 20); x = rng.normal(size=(40, 3)); x[:, 0] += 3 * y
>>> fitted = fit_standardized(x, y, c=1.0)
>>> round(ua(y, predict_standardized(fitted, x)), 2) > 0.9
True
"""

import importlib
import sys
import warnings

import numpy as np


def ua(labels, predicted):
    """Unweighted accuracy (mean recall over the classes present in `labels`), in [0, 1].

    Example:

    >>> ua(np.array([0, 0, 1]), np.array([0, 1, 1]))
    0.75
    """
    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        # A speaker may lack an emotion: UA is then over the classes it has.
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(labels, predicted))


def fit_standardized(x, y, c, seed=0, sample_weight=None, max_iter=2000):
    """`(scaler, classifier)`: standardisation, then a multinomial logistic regression from scratch (L-BFGS).

    The fit every probe makes (inner folds and the final refit); with one
    BLAS thread, since the matrices are small and BLAS threads competing
    for busy cores slow every iteration down (docs/notes.md).

    Args:
        x: float array `[n, d]`.
        y: int array `[n]`.
        c: float. Inverse L2 strength.
        seed: int. Defaults to `0`.
        sample_weight: optional float array `[n]`.
        max_iter: int. L-BFGS iterations at most. Defaults to `2000`.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> y = np.tile([0, 1], 20); x = rng.normal(size=(40, 3)); x[:, 0] += 3 * y
    >>> fitted = fit_standardized(x, y, c=1.0)
    >>> float(np.mean(predict_standardized(fitted, x) == y)) > 0.9
    True
    """
    import threadpoolctl
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    classifier = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        return scaler, classifier.fit(scaler.transform(x), y, sample_weight=sample_weight)


def predict_standardized(fitted, x):
    """Class ids of `x` `[n, d]` by a `fit_standardized` result."""
    import threadpoolctl

    scaler, classifier = fitted
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        return classifier.predict(scaler.transform(x))


def fit_rows(features, labels, rows, c, seed):
    """`fit_standardized` on the rows `rows` of `features` and `labels` (one inner fold's fit in a worker)."""
    return fit_standardized(features[rows], labels[rows], c, seed)


def path_scores(x_train, y_train, x_held, y_held, c_grid, seed):
    """UA on the held-out rows for each `C` (grid order) along a warm-started path in the span of the training rows.

    The standardisation once, the rows in the span of the training rows (an
    exact change of coordinates when there are fewer rows than columns),
    the `C` values smallest first, each L-BFGS run starting from the
    previous solution (`fit_probe(inner_search="path")`).
    """
    import threadpoolctl
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    z_train, z_held = scaler.transform(x_train), scaler.transform(x_held)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        if z_train.shape[0] < z_train.shape[1]:
            _, _, vt = np.linalg.svd(z_train, full_matrices=False)
            z_train, z_held = z_train @ vt.T, z_held @ vt.T
        classifier = LogisticRegression(max_iter=2000, random_state=seed, warm_start=True)
        scores = {}
        for c in sorted(c_grid):
            scores[c] = ua(y_held, classifier.set_params(C=c).fit(z_train, y_train).predict(z_held))
    return [scores[c] for c in c_grid]


def _send_by_value(module):
    """Registers `module` with the cloudpickle joblib's workers receive functions through: the package from
    joblib 1.6 on, the copy inside joblib before."""
    for name in ("cloudpickle", "joblib.externals.cloudpickle"):
        try:
            importlib.import_module(name).register_pickle_by_value(module)
        except ImportError:
            pass


# Workers get these functions by value, so they never import keras_ser (see the module docstring).
_send_by_value(sys.modules[__name__])
