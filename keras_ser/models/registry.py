"""The model registry: one table of the zoo, filled by the task classes themselves.

A task class (a subclass of `keras_ser.SERTask`) that sets `NAME` is
registered when Python defines it; what the rest of keras-ser needs to know
of a model is said once, in class attributes (see `SERTask`): its one-line
`DESCRIPTION`, its `PREPROCESSOR` (the front end that turns waveforms into
its input, with the class of its feature config), how many segments it takes
(`SEGMENTED`), the training recipes that fit it (`RECIPES`), the
`keras_ser.training.TrainConfig` fields its `build_model` call takes
(`BUILD_OPTIONS`), its default backbone and SRU width, and whether it
converts to TFLite (`TFLITE_SUPPORTED`). `build_model`, `list_models`, the
command line's `--model` choices, `Preprocessor.from_layout`, `TrainConfig`,
the run reports and the TFLite export all read this table, so a new model
family is new classes in a new module and nothing else.

Example:

>>> import keras_ser
>>> from keras_ser.models import registry
>>> registry.get("encoder_stats").__name__, registry.get("encoder_stats").PREPROCESSOR.LAYOUT
('EncoderStatsClassifier', 'mel_frames')
>>> list(registry.preprocessor_classes())
['segments', 'frames', 'mel_frames', 'sfx_mel', 'fusion']
"""

from keras_ser.models.checks import check_dropout
from keras_ser.models.checks import check_num_classes
from keras_ser.models.checks import resolve_class_names
from tf_pipeline.config import check_n_segments

# NAME -> task class, in the order the classes were defined.
_TASKS = {}
SEGMENTED_VALUES = ("n", 1, None)


def _describe(task_class):
    return f"{task_class.__module__}.{task_class.__qualname__}"


def register(task_class):
    """Adds a task class to the registry under its `NAME` (`SERTask` subclasses call it when defined).

    A second class of the same name is an error, unless it is the same
    class defined again (same module and qualified name: a module reloaded,
    a notebook cell run twice), which replaces the first. So is a
    preprocessor whose `LAYOUT` another preprocessor class has already.

    Returns:
        The class.
    """
    name = task_class.NAME
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"A registered model's NAME must be an identifier. Received: NAME={name!r} "
                         f"on {_describe(task_class)}")
    preprocessor = getattr(task_class, "PREPROCESSOR", None)
    if not isinstance(getattr(preprocessor, "LAYOUT", None), str):
        raise ValueError(f"Model {name!r} ({_describe(task_class)}) must name its PREPROCESSOR, a "
                         f"keras_ser.models.preprocessor.Preprocessor subclass with a LAYOUT. Received: {preprocessor!r}")
    if task_class.SEGMENTED not in SEGMENTED_VALUES:
        raise ValueError(f"SEGMENTED must be one of {SEGMENTED_VALUES}. Received: SEGMENTED={task_class.SEGMENTED!r} "
                         f"on {_describe(task_class)}")
    existing = _TASKS.get(name)
    if existing is not None and _describe(existing) != _describe(task_class):
        raise ValueError(f"A model named {name!r} is registered already ({_describe(existing)}). "
                         f"Received: {_describe(task_class)}")
    for other in _TASKS.values():
        other_preprocessor = other.PREPROCESSOR
        if (other.NAME != name and other_preprocessor.LAYOUT == preprocessor.LAYOUT
                and _describe(other_preprocessor) != _describe(preprocessor)):
            raise ValueError(f"The layout {preprocessor.LAYOUT!r} is {_describe(other_preprocessor)}'s already "
                             f"(model {other.NAME!r}). Received: {_describe(preprocessor)} for model {name!r}")
    _TASKS[name] = task_class
    return task_class


def unregister(name):
    """Removes a model from the registry (a test's model family, once the test is done).

    Example:

    >>> unregister("no_such_model")
    Traceback (most recent call last):
    ...
    ValueError: Unknown model. Expected one of ['cnn_sru', 'cnn', 'sru', 'encoder_stats', 'encoder_sru', 'sfx_stats', 'fusion_stats']. Received: name='no_such_model'
    """
    get(name)
    del _TASKS[name]


def get(name):
    """The task class registered as `name`; a ValueError lists the names.

    Example:

    >>> get("cnn_sru").__name__
    'CNNSRUClassifier'
    """
    if not isinstance(name, str) or name not in _TASKS:
        raise ValueError(f"Unknown model. Expected one of {list(_TASKS)}. Received: name={name!r}")
    return _TASKS[name]


def tasks():
    """A copy of the registry: `{name: task class}` in the order the classes were defined."""
    return dict(_TASKS)


def names(where=None):
    """The registered model names, in order; with `where`, those whose task class it holds true of.

    Example:

    >>> names(where=lambda task: task.TFLITE_SUPPORTED)
    ['cnn_sru', 'cnn', 'sru', 'encoder_stats', 'encoder_sru']
    """
    return [name for name, task in _TASKS.items() if where is None or where(task)]


def list_models():
    """Lists the zoo: a dict `name -> one-line description`.

    Example:

    >>> for name, description in list_models().items():
    ...     print(name)
    cnn_sru
    cnn
    sru
    encoder_stats
    encoder_sru
    sfx_stats
    fusion_stats
    """
    return {name: task.DESCRIPTION for name, task in _TASKS.items()}


def preprocessor_classes():
    """`{layout: preprocessor class}` of the registered models, in the order of their first model."""
    classes = {}
    for task in _TASKS.values():
        classes.setdefault(task.PREPROCESSOR.LAYOUT, task.PREPROCESSOR)
    return classes


def build_model(
    name="cnn_sru",
    n_segments=None,
    num_classes=7,
    backbone=None,
    backbone_variant=None,
    backbone_weights=None,
    sru_units=None,
    dropout=0.5,
    class_names=None,
    compile=True,
    feature_config=None,
    image_size=227,
    backbone_kwargs=None,
    speaker_subspace=0,
    **options,
):
    """Builds a zoo model by name, ready to `fit`: the entry point of keras-ser.

    The default is the paper's network: 3 segments of 227x227x3 through the
    Caffe AlexNet, an SRU of 4096 units, a softmax over 7 emotions;
    107.2 M parameters (108.6 M with ungrouped convolutions,
    `backbone_kwargs={"groups": 1}`). Models take raw features and
    standardise them in their first layer: set the training speakers'
    statistics with `keras_ser.set_channel_stats(model, mean, std)`.

    The arguments common to the zoo are checked here; the model's task
    class (`keras_ser.models.registry.get(name)`) builds itself from them
    with its `from_options`, using those it needs. What each model takes as
    input is what its preprocessor makes (`model.preprocessor`, in
    TensorFlow ops): each family's module says it
    (`keras_ser.models.cnn_sru`: log-Mel segments and frames;
    `keras_ser.models.speech_encoders`: the pretrained encoders' frames).

    With `compile=True` the model is compiled with `model.compile()`'s
    defaults: Adam with learning rate 1e-4 (the optimiser of this project's
    reference calibration of the end-to-end model, docs/design.md), sparse
    categorical cross-entropy, and the metrics WA (accuracy, `"wa"`) and UA
    (mean per-class recall over the epoch, `"ua"`).

    Args:
        name: str. A registered model (`list_models()`). Defaults to
            `"cnn_sru"`.
        n_segments: int or None. Segments per utterance: 1..5 for the
            models that take N segments (`SEGMENTED == "n"`: `cnn_sru`,
            `encoder_sru`; None: 3); one-segment models (`cnn`) take None
            or 1; the others None only. Defaults to `None`.
        num_classes: int >= 2. Defaults to `7` (EMO-DB).
        backbone: str or None. For the CNN models a name in
            `keras_ser.backbones.BACKBONES` (`"alexnet"`,
            `"efficientnet_lite0"`); for `encoder_stats` and `encoder_sru`
            a name in `keras_ser.backbones.SPEECH_BACKBONES`. None takes the
            model's `DEFAULT_BACKBONE`; `sfx_stats` and `fusion_stats` have
            fixed backbones (None or that name only). Defaults to `None`.
        backbone_variant: str or None. The backbone's variant; None takes
            its default (`"caffe"`, the paper's network, for AlexNet;
            `"torchvision"` is the other). Defaults to `None`.
        backbone_weights: None, or what the backbone factory accepts: for
            AlexNet a path to `bvlc_alexnet.npy` (caffe) or a torchvision
            `.pth`; for EfficientNet-Lite0 `"imagenet"` or a path. For the
            CNN models None is a random initialisation. For the speech
            encoders None means their pretrained weights, shipped with
            keras-ser, and `"random"` none (see
            `keras_ser.models.speech_encoders`). Defaults to `None`.
        sru_units: int or None. SRU width (`cnn_sru`, `sru`,
            `encoder_sru`). None: the model's default (4096; 256 for
            `encoder_sru`). Defaults to `None`.
        dropout: float in [0, 1). Backbone dropout (after fc6 and fc7 for
            AlexNet) for `cnn_sru` and `cnn`; dropout on the SRU output for
            `sru`; dropout on the pooled, standardised features for the
            encoder models. Defaults to `0.5`.
        class_names: list of `num_classes` str, or None for `"class_0"`, ...
            Stored in the model (`model.class_names`).
        compile: bool. Compile with the defaults above. Defaults to `True`.
        feature_config: the model's feature config (the class its
            preprocessor names, `PREPROCESSOR.CONFIG_CLASS`: e.g.
            `tf_pipeline.config.FeatureConfig` for the CNN models), its
            dict, or None for its defaults. Stored in the model
            (`model.feature_config`).
        image_size: int. Height and width of each segment image (the CNN
            models). Defaults to `227`.
        backbone_kwargs: dict or None. More arguments of the backbone
            factory, e.g. `{"filters": (8, 8, 8, 8, 8), "fc_units": 16}` for
            a tiny AlexNet. For `fusion_stats` a dict with the keys
            `"speaker_encoder"` and `"sound_effects_encoder"`, each the
            arguments of that encoder.
        speaker_subspace: int >= 0. For the models that take it
            (`sfx_stats`, `fusion_stats`): the rank of the speaker-subspace
            projection after the standardisation (0: none; fitted by the
            `probe` recipe on the training speakers). Defaults to `0`.
        **options: further arguments of the model's `from_options` (a
            model family's own options, e.g. `fine_tune=1` for
            `encoder_stats`: its top LSTM layer left trainable).

    Returns:
        An instance of the registered task class.

    Raises:
        ValueError: bad arguments; the message says what was received.

    Example:

    >>> import keras_ser
    >>> model = keras_ser.build_model(n_segments=3, class_names=[
    ...     "anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"])
    ...                                                          # doctest: +SKIP
    >>> model.fit(train_ds, validation_data=val_ds, epochs=30)   # doctest: +SKIP

    A tiny instance (what the tests build):

    >>> model = keras_ser.build_model(n_segments=2, num_classes=4, sru_units=16,
    ...     image_size=67, backbone_kwargs={"filters": (8, 8, 8, 8, 8), "fc_units": 16})
    >>> model.input.shape, model.output.shape
    ((None, 2, 67, 67, 3), (None, 4))
    """
    # === Arguments every model takes, checked at the door ===
    task = get(name)
    check_num_classes(num_classes)
    class_names = resolve_class_names(class_names, num_classes)
    feature_config = task.PREPROCESSOR.CONFIG_CLASS.coerce(feature_config)
    check_dropout(dropout)
    if backbone_kwargs is not None and not isinstance(backbone_kwargs, dict):
        raise ValueError(f"backbone_kwargs must be a dict or None. Received: backbone_kwargs={backbone_kwargs!r}")
    if task.SEGMENTED == "n":
        n_segments = check_n_segments(3 if n_segments is None else n_segments)
    elif task.SEGMENTED == 1 and n_segments not in (None, 1):
        raise ValueError(f"The {name!r} model takes one segment (the whole utterance image). "
                         f"Received: n_segments={n_segments!r}")
    elif task.SEGMENTED is None and n_segments is not None:
        raise ValueError(f"The {name!r} model reads frame-level features, not segments; leave n_segments=None. "
                         f"Received: n_segments={n_segments!r}")
    if speaker_subspace and "speaker_subspace" not in task.BUILD_OPTIONS:
        raise ValueError(f"speaker_subspace is an option of {sorted(names(lambda t: 'speaker_subspace' in t.BUILD_OPTIONS))}. "
                         f"Received: speaker_subspace={speaker_subspace!r} for {name!r}")

    # === The model, built by its class ===
    model = task.from_options(
        n_segments=n_segments, num_classes=num_classes, backbone=backbone, backbone_variant=backbone_variant,
        backbone_weights=backbone_weights, sru_units=sru_units, dropout=dropout, class_names=list(class_names),
        feature_config=feature_config, image_size=image_size, backbone_kwargs=backbone_kwargs,
        speaker_subspace=speaker_subspace, **options)
    if compile:
        model.compile()
    return model
