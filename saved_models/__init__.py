"""saved_models: export keras-ser models as versioned SavedModels for TensorFlow Serving
(`export`) and as TensorFlow Lite files (`export_tflite`, `saved_models.tflite`).

Layout: `<export_root>/<name>/<version>/` (the `--model_base_path` of TF
Serving is `<export_root>/<name>`). Exported artefacts are never committed.

Example:

>>> import saved_models
>>> path = saved_models.export(model, "exports", "ser")   # doctest: +SKIP
>>> saved_models.audit_ops(path)                               # doctest: +SKIP
[]
>>> saved_models.export_tflite(model, "exports", "ser")     # doctest: +SKIP
'exports/ser.tflite'
"""

from saved_models.audit import audit_ops
from saved_models.audit import check_ops
from saved_models.audit import saved_model_ops
from saved_models.export import DEFAULT_MAX_SECONDS
from saved_models.export import OUTPUTS
from saved_models.export import export
from saved_models.export import list_versions
from saved_models.export import next_version
from saved_models.export import publish_version
from saved_models.export import read_labels
from saved_models.export import read_metadata
from saved_models.export import serving_functions
from saved_models.signatures import SERVE_SPEAKER
from saved_models.signatures import SERVE_WAV
from saved_models.signatures import SERVING_DEFAULT
from saved_models.signatures import SIGNATURES
from saved_models.tflite import export_tflite
from saved_models.tflite import read_tflite_metadata
from saved_models.tflite import run_tflite
from saved_models.tflite import tflite_ops
from saved_models.warmup import read_warmup_file

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "OUTPUTS",
    "SERVE_SPEAKER",
    "SERVE_WAV",
    "SERVING_DEFAULT",
    "SIGNATURES",
    "audit_ops",
    "check_ops",
    "export",
    "export_tflite",
    "list_versions",
    "next_version",
    "publish_version",
    "read_labels",
    "read_metadata",
    "read_tflite_metadata",
    "read_warmup_file",
    "saved_model_ops",
    "run_tflite",
    "serving_functions",
    "tflite_ops",
]
