"""Safe persistence every family shares: config.json + meta.json + weights.safetensors.

Loading never unpickles: the config is JSON, rebuilt through the family config's `from_dict`;
the weights are safetensors loaded into a freshly constructed module with `strict=True`, and a
mismatch (a missing, extra or misshapen tensor) is a ModelFileError naming the directory.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import safetensors
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from models.base import ModelMeta
from models.config import FamilyConfig
from models.errors import ModelFileError
from models.loop import resolve_device

FILES = ("config.json", "meta.json", "weights.safetensors")

C = TypeVar("C", bound=FamilyConfig)
M = TypeVar("M", bound=nn.Module)


def meta_to_dict(meta: ModelMeta) -> dict[str, Any]:
    """JSON-safe dict of `meta` (conformal keys become strings)."""
    data = dataclasses.asdict(meta)
    data["conformal"] = {str(k): list(v) for k, v in meta.conformal.items()}
    return data


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
            future_covariates=tuple(str(c) for c in data.get("future_covariates", ())),
            future_stats=tuple((float(m), float(sd)) for m, sd in data.get("future_stats", ())),
            conformal={
                int(k): tuple(float(x) for x in v) for k, v in data.get("conformal", {}).items()
            },
            versions={str(k): str(v) for k, v in data.get("versions", {}).items()},
            extra=dict(data.get("extra", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{where}: malformed metadata ({exc!r}); re-save the model") from exc


def read_json(directory: Path, name: str) -> dict[str, Any]:
    """The JSON object in `directory / name`.

    Raises:
        ModelFileError: the file is missing, not JSON, or not a JSON object.
    """
    path = _existing(Path(directory) / name)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc}); re-save the model") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def _existing(path: Path) -> Path:
    """`path`; a ModelFileError naming the files of a saved model when it is missing."""
    if not path.is_file():
        raise ModelFileError(f"{path} is missing; a saved model directory holds {', '.join(FILES)}")
    return path


def save_module(directory: Path, config: FamilyConfig, meta: ModelMeta, module: nn.Module) -> None:
    """Save a family: its config, its metadata and every buffer and parameter of `module`
    (made contiguous and moved to the CPU)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True))
    (directory / "meta.json").write_text(json.dumps(meta_to_dict(meta), indent=2, sort_keys=True))
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    save_file(cpu, str(directory / "weights.safetensors"))


def load_module(
    directory: Path, config_cls: type[C], build: Callable[[C], M], device: str = "cpu"
) -> M:
    """Rebuild a family from a saved directory: from_dict -> `build` -> strict state dict.

    `config_cls.from_dict` validates config.json; `build` is the family's constructor. Returns
    the module in eval mode on `device`, the saved metadata as its `meta`.

    Raises:
        ModelFileError: a missing or malformed file, meta.json and config.json naming
            different families, or weights that do not fit the config.
        ConfigError: config.json holds an unknown key or a bad value.
    """
    directory = Path(directory)
    config_dict = read_json(directory, "config.json")
    meta = meta_from_dict(read_json(directory, "meta.json"), str(directory / "meta.json"))
    weights = _existing(directory / "weights.safetensors")
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"{weights} is not a valid safetensors file ({exc})") from exc
    config = config_cls.from_dict(config_dict)
    if meta.family != config.family:
        raise ModelFileError(
            f"{directory}: meta.json family {meta.family!r} != config.json {config.family!r}; "
            "save the model again"
        )
    module = build(config)
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(
            f"{directory}: weights.safetensors does not fit config.json ({exc}); "
            "save the model again"
        ) from exc
    module.to(resolve_device(device))
    module.eval()
    module.meta = meta  # type: ignore[assignment]
    return module


def fresh_meta(config: FamilyConfig) -> ModelMeta:
    """The metadata of a model just built from `config`, before fit adds intervals and facts."""
    return ModelMeta(
        family=config.family,
        lookback=config.lookback,
        max_horizon=config.max_horizon,
        frequency=config.frequency,
        target=config.target,
        covariates=config.covariates,
        calendar=config.calendar,
        future_covariates=config.future_covariates,
        versions={  # Python and the libraries a model's numbers depend on
            "python": platform.python_version(),
            "torch": str(torch.__version__),
            "numpy": str(np.__version__),
            "safetensors": str(getattr(safetensors, "__version__", "unknown")),
        },
    )
