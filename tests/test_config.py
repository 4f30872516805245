import json

import pytest

from tf_pipeline.config import FeatureConfig


def test_defaults_are_the_papers():
    config = FeatureConfig()
    assert (config.sample_rate, config.n_mels, config.win_length, config.hop_length, config.n_fft) == (
        16000, 60, 400, 160, 512)
    assert config.win_length / config.sample_rate == 0.025
    assert config.hop_length / config.sample_rate == 0.010
    assert (config.fmin, config.fmax, config.log_floor, config.delta_width) == (0.0, 8000.0, 1e-6, 2)


def test_round_trips_through_dict_and_json():
    config = FeatureConfig(n_mels=40, fmax=7600.0)
    assert FeatureConfig.from_dict(config.to_dict()) == config
    assert FeatureConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


def test_is_frozen():
    with pytest.raises(AttributeError):
        FeatureConfig().n_mels = 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_mels": 0}, "n_mels=0"),
        ({"win_length": 600}, "win_length=600, n_fft=512"),
        ({"fmax": 9000.0}, "fmax=9000.0"),
        ({"log_floor": 0.0}, "log_floor=0.0"),
        ({"hop_length": 1.5}, "hop_length=1.5"),
    ],
)
def test_bad_values_say_what_was_received(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        FeatureConfig(**kwargs)


def test_unknown_fields_are_rejected():
    with pytest.raises(ValueError, match="Unknown FeatureConfig fields: \\['n_mfcc'\\]"):
        FeatureConfig.from_dict({"n_mfcc": 13})


def test_importing_config_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys, tf_pipeline.config; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
