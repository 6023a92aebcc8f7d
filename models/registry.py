"""The family registry: the one place that maps a family name to its config and model classes.

Everything that needs "which families exist" imports `FAMILIES` from here (models.io, the
training jobs, the CLI, benchmarks); nothing else declares the list. Families import only
their own building blocks (models.persist, models.rollout, ...), never this module or
models.io, so the imports form no cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from models.base import Forecaster
from models.baselines import BaselineForecaster
from models.config import (
    BASELINE_FAMILIES,
    RECURRENT_FAMILIES,
    BaselineConfig,
    ESNConfig,
    FamilyConfig,
    RecurrentConfig,
)
from models.errors import ConfigError
from models.esn import ESNForecaster
from models.recurrent import RecurrentForecaster


class FamilyClass(Protocol):
    """A forecaster class: built from its config, loaded from a saved directory."""

    def __call__(self, config: Any) -> Forecaster: ...

    def load(self, directory: Path, device: str = "cpu") -> Forecaster: ...


@dataclass(frozen=True)
class Family:
    """One registered family: its name, config class and model class."""

    name: str
    config: type[FamilyConfig]
    model: FamilyClass


_REGISTRY: dict[str, Family] = {
    **{name: Family(name, RecurrentConfig, RecurrentForecaster) for name in RECURRENT_FAMILIES},
    "esn": Family("esn", ESNConfig, ESNForecaster),
    **{name: Family(name, BaselineConfig, BaselineForecaster) for name in BASELINE_FAMILIES},
}

FAMILIES: tuple[str, ...] = tuple(_REGISTRY)
# The families that learn weights from data (the baselines only estimate a few numbers).
LEARNED_FAMILIES: tuple[str, ...] = tuple(f for f in FAMILIES if f not in BASELINE_FAMILIES)


def family(name: object) -> Family:
    """The registered family called `name`.

    Raises:
        ConfigError: naming the unknown family and the known ones.
    """
    found = _REGISTRY.get(name) if isinstance(name, str) else None
    if found is None:
        raise ConfigError(f"family {name!r} is not known; use one of {FAMILIES}")
    return found


def config_from_dict(data: dict[str, Any]) -> FamilyConfig:
    """The family's config from a JSON-style dict; `data["family"]` picks the class.

    Raises:
        ConfigError: unknown family, unknown keys or bad values.
    """
    name = data.get("family") if isinstance(data, dict) else None
    return family(name).config.from_dict(data)
