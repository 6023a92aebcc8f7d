"""Create, save and load a forecaster of any family: the entry point the layers above use.

The family comes from the registry (models.registry); the file work is models.persist:
config.json + meta.json + weights.safetensors, loaded without unpickling anything.
"""

from __future__ import annotations

from pathlib import Path

from models.base import Forecaster
from models.config import FamilyConfig
from models.errors import ConfigError, ModelFileError
from models.persist import FILES, meta_from_dict, meta_to_dict, read_json
from models.registry import FAMILIES, config_from_dict, family

__all__ = [
    "FAMILIES",
    "FILES",
    "config_from_dict",
    "create",
    "load",
    "meta_from_dict",
    "meta_to_dict",
    "save",
]


def create(config: FamilyConfig) -> Forecaster:
    """A new, untrained forecaster for `config` (any registered family)."""
    return family(config.family).model(config)


def save(model: Forecaster, directory: Path) -> None:
    """Write `model` to `directory` (config.json, meta.json, weights.safetensors)."""
    model.save(Path(directory))


def load(directory: Path, device: str = "cpu") -> Forecaster:
    """Load a saved forecaster of any family onto `device`.

    Raises:
        ModelFileError: missing files, malformed JSON, an unknown family, or weights that
            do not fit the config.
    """
    directory = Path(directory)
    name = read_json(directory, "config.json").get("family")
    try:
        entry = family(name)
    except ConfigError as exc:
        raise ModelFileError(
            f"{directory / 'config.json'}: family {name!r} is not one of {FAMILIES}"
        ) from exc
    return entry.model.load(directory, device=device)
