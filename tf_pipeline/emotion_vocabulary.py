"""The emotion names shared by every corpus, and each corpus's map onto them.

Each corpus reader keeps its corpus's own class names (EMO-DB's "anger",
CASIA's "angry", RAVDESS's "fearful", EMOVO's "joy"). To train or test on
several corpora at once (`tf_pipeline.corpora.combine`) or to ask one corpus
for a class by its shared name (`tf_pipeline.corpora.select_classes`), every
native name is mapped onto one name of `SHARED_EMOTIONS`.

The maps follow the corpora's own descriptions: EMOVO's "joy" (gioia) and
RAVDESS's and CASIA's "happy" are "happiness"; RAVDESS's "calm" is a class of
its own, not "neutral"; EMO-DB's "boredom" has no counterpart elsewhere.

Example:

>>> EMOTION_MAPS["ravdess"]["fearful"]
'fear'
>>> [corpus for corpus, names in EMOTION_MAPS.items() if "calm" in names.values()]
['ravdess']
"""

SHARED_EMOTIONS = ("anger", "happiness", "sadness", "neutral", "fear", "disgust", "surprise", "boredom", "calm")

EMOTION_MAPS = {
    "emodb": {name: name for name in ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")},
    "casia": {
        "angry": "anger",
        "fear": "fear",
        "happy": "happiness",
        "neutral": "neutral",
        "sad": "sadness",
        "surprise": "surprise",
    },
    "ravdess": {
        "neutral": "neutral",
        "calm": "calm",
        "happy": "happiness",
        "sad": "sadness",
        "angry": "anger",
        "fearful": "fear",
        "disgust": "disgust",
        "surprised": "surprise",
    },
    "emovo": {
        "disgust": "disgust",
        "joy": "happiness",
        "neutral": "neutral",
        "fear": "fear",
        "anger": "anger",
        "surprise": "surprise",
        "sadness": "sadness",
    },
    # The synthetic corpus uses EMO-DB's names.
    "synthetic": {name: name for name in ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")},
}
"""dict `corpus name -> {native class name: shared class name}`, one entry per reader with fixed classes."""
