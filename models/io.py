"""Family registry and safe persistence: config.json + meta.json + weights.safetensors.

Loading never unpickles: the config is JSON, rebuilt through the family's `from_dict`; the
weights are safetensors loaded into a freshly constructed model with `strict=True`.

A family class provides `config`, `meta`, `fit`, `predict`, `save(directory)` and a classmethod
`load(directory, device="cpu")`; `write_model_dir` / `read_model_dir` do the file work for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from models.base import Forecaster, ModelMeta
from models.errors import ConfigError, ModelFileError

if TYPE_CHECKING:
    from models.config import ESNConfig, RecurrentConfig

FAMILIES = ("lstm", "gru", "rnn", "esn")
FILES = ("config.json", "meta.json", "weights.safetensors")


def config_from_dict(data: dict[str, Any]) -> RecurrentConfig | ESNConfig:
    """The family's config from a JSON-style dict; `data["family"]` picks the class.

    Raises:
        ConfigError: unknown family, unknown keys or bad values.
    """
    family = data.get("family") if isinstance(data, dict) else None
    if family not in FAMILIES:
        raise ConfigError(f"family {family!r} is not known; use one of {FAMILIES}")
    from models.config import ESNConfig, RecurrentConfig

    if family == "esn":
        return ESNConfig.from_dict(data)
    return RecurrentConfig.from_dict(data)


def family_class(family: str) -> Any:
    """The forecaster class of `family` (imported on first use)."""
    if family == "esn":
        from models.esn import ESNForecaster

        return ESNForecaster
    if family in FAMILIES:
        from models.recurrent import RecurrentForecaster

        return RecurrentForecaster
    raise ConfigError(f"family {family!r} is not known; use one of {FAMILIES}")


def create(config: RecurrentConfig | ESNConfig) -> Forecaster:
    """A new, untrained forecaster for `config`."""
    model: Forecaster = family_class(config.family)(config)
    return model


def save(model: Forecaster, directory: Path) -> None:
    """Write `model` to `directory` (config.json, meta.json, weights.safetensors)."""
    model.save(Path(directory))


def load(directory: Path, device: str = "cpu") -> Forecaster:
    """Load a saved forecaster of any family onto `device`.

    Raises:
        ModelFileError: missing files, malformed JSON or an unknown family.
    """
    config = _read_json(Path(directory), "config.json")
    family = config.get("family")
    if family not in FAMILIES:
        raise ModelFileError(
            f"{Path(directory) / 'config.json'}: family {family!r} is not one of {FAMILIES}"
        )
    model: Forecaster = family_class(str(family)).load(Path(directory), device=device)
    return model


def meta_to_dict(meta: ModelMeta) -> dict[str, Any]:
    """JSON-safe dict of `meta` (conformal keys become strings)."""
    return {
        "family": meta.family,
        "lookback": meta.lookback,
        "max_horizon": meta.max_horizon,
        "frequency": meta.frequency,
        "target": meta.target,
        "covariates": list(meta.covariates),
        "calendar": meta.calendar,
        "conformal": {str(k): list(v) for k, v in meta.conformal.items()},
        "versions": dict(meta.versions),
        "extra": dict(meta.extra),
    }


def meta_from_dict(data: dict[str, Any], where: str = "meta.json") -> ModelMeta:
    """Inverse of `meta_to_dict`.

    Raises:
        ModelFileError: naming `where` and the missing or malformed field.
    """
    try:
        return ModelMeta(
            family=str(data["family"]),
            lookback=int(data["lookback"]),
            max_horizon=int(data["max_horizon"]),
            frequency=str(data["frequency"]),
            target=str(data["target"]),
            covariates=tuple(str(c) for c in data.get("covariates", ())),
            calendar=bool(data.get("calendar", False)),
            conformal={
                int(k): tuple(float(x) for x in v) for k, v in data.get("conformal", {}).items()
            },
            versions={str(k): str(v) for k, v in data.get("versions", {}).items()},
            extra=dict(data.get("extra", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{where}: malformed metadata ({exc!r}); re-save the model") from exc


def write_model_dir(
    directory: Path, config: dict[str, Any], meta: ModelMeta, tensors: dict[str, Tensor]
) -> None:
    """Write the three files of a saved model; tensors are made contiguous and moved to CPU."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    (directory / "meta.json").write_text(json.dumps(meta_to_dict(meta), indent=2, sort_keys=True))
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(cpu, str(directory / "weights.safetensors"))


def _read_json(directory: Path, name: str) -> dict[str, Any]:
    path = directory / name
    if not path.is_file():
        raise ModelFileError(f"{path} is missing; a saved model directory holds {', '.join(FILES)}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc}); re-save the model") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_model_dir(directory: Path) -> tuple[dict[str, Any], ModelMeta, dict[str, Tensor]]:
    """(config dict, meta, CPU tensors) of a saved model directory.

    Raises:
        ModelFileError: a file is missing or unreadable.
    """
    directory = Path(directory)
    config = _read_json(directory, "config.json")
    meta = meta_from_dict(_read_json(directory, "meta.json"), str(directory / "meta.json"))
    weights = directory / "weights.safetensors"
    if not weights.is_file():
        raise ModelFileError(
            f"{weights} is missing; a saved model directory holds {', '.join(FILES)}"
        )
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"{weights} is not a valid safetensors file ({exc})") from exc
    return config, meta, tensors
