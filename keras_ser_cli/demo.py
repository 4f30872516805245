"""The main job on the embedded default corpus, with no download and no data of your own.

1. Writes the synthetic speech-like corpus (4 speakers x 4 emotions x 8
   utterances, EMO-DB naming) and prints its feature summary.
2. Runs a short leave-one-speaker-out evaluation of a small CNN+SRU (the
   paper's architecture with narrower AlexNet layers and 67x67 segments, so
   it runs in minutes on 2 CPU cores) and prints the results table.
3. Trains a final model on every speaker and saves it (.keras), then exports
   it as a SavedModel for TensorFlow Serving when the export package is
   available.
4. Predicts two files of two new synthetic speakers, never seen in
   training, with the saved model, printing label and per-class
   probabilities.

Everything goes to --work_dir; running the demo again resumes the LOSO run.
"""

import os
import time

from keras_ser_cli import corpus_flags, features

# A small CNN+SRU that learns the synthetic corpus in minutes on 2 cores.
DEMO_MODEL = dict(
    model="cnn_sru",
    n_segments=3,
    image_size=67,
    backbone_kwargs={"filters": [16, 32, 48, 48, 32], "fc_units": 128},
    sru_units=64,
    dropout=0.3,
    recipe="end_to_end",
    learning_rate=1e-3,
    batch_size=16,
    validation="none",
)


def define_flags(flag_values):
    from absl import flags

    corpus_flags.define(flag_values)
    flags.DEFINE_string("work_dir", "keras_ser_demo", "Folder for the corpus-independent outputs: the LOSO run, "
                        "the model, the export.", flag_values=flag_values)
    flags.DEFINE_integer("epochs", 12, "Training epochs per fold and for the final model.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_list("folds", None, "Test speakers of the LOSO part (default: all four).", flag_values=flag_values)
    flags.DEFINE_enum("verbose", "2", ["0", "1", "2"], "Keras output: 1 progress bars, 2 a line per epoch, 0 none.",
                      flag_values=flag_values)


def main(flag_values, positional):
    import keras

    from keras_ser.inference import format_table, predict_files
    from keras_ser.training import TrainConfig, run_loso, train_final

    start = time.time()
    work_dir = flag_values.work_dir
    os.makedirs(work_dir, exist_ok=True)
    print("== 1. corpus")
    corpus = corpus_flags.load(flag_values)
    print(corpus.summary())
    features.print_feature_summary(corpus)

    config = TrainConfig(epochs=flag_values.epochs, **DEMO_MODEL)
    verbose = int(flag_values.verbose)
    print(f"\n== 2. leave-one-speaker-out ({len(flag_values.folds or corpus.speakers)} folds)")
    run_loso(corpus, config, os.path.join(work_dir, "loso"), speakers=flag_values.folds, verbose=verbose,
             data_dir=flag_values.data_dir or corpus_flags.DEFAULT_SYNTHETIC_DIR, command="keras-ser demo")

    print("== 3. final model on every speaker")
    result = train_final(corpus, config, verbose=verbose)
    model_path = os.path.join(work_dir, "demo_cnn_sru.keras")
    result.model.save(model_path)
    print(f"saved {model_path}")
    try:
        from saved_models import export
    except ImportError:
        export = None
    if export is not None:
        path = export(result.model, os.path.join(work_dir, "export"), "ser", overwrite=True, version=1)
        print(f"exported SavedModel for TF Serving: {path}")

    print("\n== 4. predict two files of speakers never seen in training, with the saved model")
    from tf_pipeline import corpora

    unseen = corpora.synthetic(os.path.join(work_dir, "unseen_speakers"), n_speakers=2, per_class=1,
                               emotions=flag_values.synthetic_emotions, seed=2026)
    picks = [unseen.records[0], unseen.records[-1]]
    model = keras.saving.load_model(model_path)
    results = predict_files(model, [record.path for record in picks])
    print(format_table(results, model.class_names))
    for record, item in zip(picks, results):
        print(f"  {os.path.basename(record.path)}: true label {unseen.class_names[record.label]}, "
              f"predicted {item.get('label')}")
    print(f"\ndemo finished in {time.time() - start:.0f} s; outputs in {work_dir}/")
    return 0
