"""Training and leave-one-speaker-out evaluation of keras-ser models.

Needs TensorFlow (the tf.data input pipeline); the models themselves do not.

Example:

>>> import tf_pipeline
>>> from keras_ser.training import TrainConfig, run_loso
>>> corpus = tf_pipeline.corpora.emodb("/data/emodb/wav")                 # doctest: +SKIP
>>> config = TrainConfig(recipe="paper", validation="next")                 # doctest: +SKIP
>>> run_loso(corpus, config, "runs/emodb_paper", speakers=["03", "08"])     # doctest: +SKIP
"""

from keras_ser.training.config import TrainConfig
from keras_ser.training.final import train_final
from keras_ser.training.loso import run_fold
from keras_ser.training.loso import run_loso
from keras_ser.training.recipes import FoldData
from keras_ser.training.recipes import TrainResult
from keras_ser.training.recipes import train
from keras_ser.training.report import compare
from keras_ser.training.report import compare_table
from keras_ser.training.report import write_report
