"""Configuration of a feature + SVM baseline run, as data that round-trips to JSON."""

import dataclasses

from keras_ser.baselines.opensmile_features import FEATURE_SETS
from keras_ser.baselines.opensmile_features import check_feature_set

# normalisation -> how results that use it are labelled
NORMALIZATIONS = {
    "train": "standardisation fitted on the training speakers only",
    "speaker": (
        "per-speaker normalisation: every speaker, the test speaker included, standardised with its "
        "own mean/std (uses the test speaker's unlabelled audio)"
    ),
}

DEFAULT_C_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
    """One openSMILE-functionals + SVM configuration, evaluated leave-one-speaker-out.

    Per fold: features of the training speakers fit a `StandardScaler`
    (inside the model-selection pipeline, so every inner fold refits it on
    its own training part), an `sklearn.svm.SVC` with `kernel` is trained for
    every C of `c_grid`, C is chosen by leave-one-speaker-out over the
    training speakers with `selection_metric`, the pipeline is refitted on
    all training speakers with that C and predicts the test speaker.

    Args:
        feature_set: `"IS09"`, `"IS10"` (the paper's Table V), `"ComParE_2016"`
            or `"eGeMAPSv02"` (any case; see `FEATURE_SETS`). Defaults to `"IS09"`.
        normalization: `"train"` (scaler fitted on the training speakers only,
            the default) or `"speaker"` (before that, each speaker is
            standardised with its own statistics; this uses the test speaker's
            unlabelled audio and is named in every result).
        kernel: str, `SVC` kernel. Defaults to `"linear"`, as usual for the
            high-dimensional openSMILE functionals.
        c_grid: tuple of float, the SVM costs tried. Defaults to
            1e-5 ... 10 in decades.
        selection_metric: `"ua"` (mean per-class recall) or `"wa"` (accuracy),
            what the inner cross-validation maximises. Defaults to `"ua"`.

    Example:

    >>> config = BaselineConfig(feature_set="IS10", normalization="speaker")
    >>> BaselineConfig.from_dict(config.to_dict()) == config
    True
    """

    feature_set: str = "IS09"
    normalization: str = "train"
    kernel: str = "linear"
    c_grid: tuple = DEFAULT_C_GRID
    selection_metric: str = "ua"

    def __post_init__(self):
        object.__setattr__(self, "feature_set", check_feature_set(self.feature_set))
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {sorted(NORMALIZATIONS)}. "
                f"Received: normalization={self.normalization!r}"
            )
        if self.kernel not in ("linear", "rbf", "poly", "sigmoid"):
            raise ValueError(
                f"kernel must be 'linear', 'rbf', 'poly' or 'sigmoid'. Received: kernel={self.kernel!r}"
            )
        grid = tuple(float(c) for c in self.c_grid)
        if not grid or any(not c > 0 for c in grid):
            raise ValueError(f"c_grid must hold positive numbers. Received: c_grid={self.c_grid!r}")
        object.__setattr__(self, "c_grid", tuple(sorted(set(grid))))
        if self.selection_metric not in ("ua", "wa"):
            raise ValueError(
                f"selection_metric must be 'ua' or 'wa'. Received: selection_metric={self.selection_metric!r}"
            )

    @property
    def uses_test_speaker_audio(self):
        """True when the test speaker's (unlabelled) audio shapes its own features."""
        return self.normalization == "speaker"

    @property
    def label(self):
        """The name of this configuration in every result, e.g. 'IS09 + linear SVM, ...'."""
        return f"{self.feature_set} + {self.kernel} SVM, {NORMALIZATIONS[self.normalization]}"

    @property
    def protocol(self):
        """One sentence of what a fold does, for the run folder's `run.json` and the reports."""
        _, config_file, dimension = FEATURE_SETS[self.feature_set]
        grid = ", ".join(f"{c:g}" for c in self.c_grid)
        return (
            f"openSMILE {self.feature_set} functionals ({dimension} features, `{config_file}`), "
            f"{NORMALIZATIONS[self.normalization]}; sklearn SVC, {self.kernel} kernel, C from {{{grid}}} chosen by "
            f"leave-one-speaker-out over the training speakers (maximising {self.selection_metric.upper()}, "
            "ties: smallest C; the scaler refitted on every inner training part), then refitted on all of them."
        )

    @property
    def slug(self):
        """A short folder-friendly name, e.g. 'is09-train', 'compare_2016-train' ('is09-train-rbf' for another kernel)."""
        kernel = "" if self.kernel == "linear" else f"-{self.kernel}"
        return f"{self.feature_set.lower()}-{self.normalization}{kernel}"

    def to_dict(self):
        config = dataclasses.asdict(self)
        config["c_grid"] = list(self.c_grid)
        return config

    @classmethod
    def from_dict(cls, config):
        return cls(**config)
