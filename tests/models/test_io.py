"""Safe persistence and the family registry: three files, JSON + safetensors, never a pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models import io
from models.base import ModelMeta, SeriesData
from models.config import RecurrentConfig
from models.errors import ConfigError, ModelFileError
from models.recurrent import RecurrentForecaster

TINY = {"family": "gru", "lookback": 12, "max_horizon": 4, "hidden_size": 8, "segment_length": 4}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = io.create(io.config_from_dict({**TINY, "epochs": 1, "device": "cpu"}))
    y = np.sin(np.arange(120) / 3).astype(np.float32)
    model.fit([SeriesData(y[:90])], [SeriesData(y[78:])])
    directory = tmp_path_factory.mktemp("model")
    io.save(model, directory)
    return directory


def _copy(saved: Path, tmp_path: Path) -> Path:
    for name in io.FILES:
        (tmp_path / name).write_bytes((saved / name).read_bytes())
    return tmp_path


def test_config_from_dict_picks_the_family_class() -> None:
    config = io.config_from_dict(TINY)
    assert isinstance(config, RecurrentConfig) and config.family == "gru"
    assert isinstance(io.create(config), RecurrentForecaster)


def test_config_from_dict_refuses_unknown_family() -> None:
    with pytest.raises(ConfigError, match=r"family 'tcn' is not known; use one of \('lstm'"):
        io.config_from_dict({"family": "tcn"})


def test_saved_directory_is_json_and_safetensors(saved: Path) -> None:
    assert sorted(p.name for p in saved.iterdir()) == sorted(io.FILES)
    config = json.loads((saved / "config.json").read_text())
    meta = json.loads((saved / "meta.json").read_text())
    assert config["family"] == meta["family"] == "gru" and set(meta["conformal"]) >= {"80", "95"}
    raw = (saved / "weights.safetensors").read_bytes()
    header = int.from_bytes(raw[:8], "little")
    entries = json.loads(raw[8 : 8 + header])  # safetensors: a JSON header, then raw tensors
    assert raw[8:9] == b"{" and all("dtype" in v for k, v in entries.items() if k[:2] != "__")
    assert not raw.startswith(b"\x80")  # not a pickle


def test_meta_round_trips(saved: Path) -> None:
    meta = io.load(saved).meta
    assert isinstance(meta, ModelMeta)
    assert io.meta_from_dict(json.loads(json.dumps(io.meta_to_dict(meta)))) == meta


def test_missing_file_is_named(saved: Path, tmp_path: Path) -> None:
    d = _copy(saved, tmp_path)
    (d / "weights.safetensors").unlink()
    with pytest.raises(ModelFileError, match=r"weights.safetensors is missing; a saved model"):
        io.load(d)


def test_malformed_json_is_refused(saved: Path, tmp_path: Path) -> None:
    d = _copy(saved, tmp_path)
    (d / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match=r"config.json is not valid JSON"):
        io.load(d)


def test_unknown_saved_family_is_refused(saved: Path, tmp_path: Path) -> None:
    d = _copy(saved, tmp_path)
    (d / "config.json").write_text(json.dumps({**TINY, "family": "prophet"}))
    with pytest.raises(ModelFileError, match=r"family 'prophet' is not one of"):
        io.load(d)


def test_weights_that_do_not_fit_the_config_are_refused(saved: Path, tmp_path: Path) -> None:
    d = _copy(saved, tmp_path)
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**config, "hidden_size": 16}))
    with pytest.raises(ModelFileError, match=r"weights.safetensors does not fit config.json"):
        io.load(d)


def test_corrupt_weights_are_refused(saved: Path, tmp_path: Path) -> None:
    d = _copy(saved, tmp_path)
    (d / "weights.safetensors").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ModelFileError, match=r"is not a valid safetensors file"):
        io.load(d)
