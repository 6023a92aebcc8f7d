"""The request contract of a registered version: what a client must send to be served.

A forecast request carries at least `lookback` observations at `frequency`, one list per past
covariate and, for a model with future-known covariates, their values over the horizon. A
new champion that changes any of these breaks clients built for the old one (the service
keeps answering longer histories: it cuts them to the look-back), so the gate and
`forecast promote` compare the two contracts and refuse a change unless told otherwise.
The contract is read from the version's own meta.json, the file the service loads.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from models.base import ModelMeta
from models.persist import meta_from_dict, read_json
from training.errors import ExperimentError
from training.registry.tracking import Tracker


@dataclass(frozen=True)
class RequestContract:
    """What a forecast request to one version must hold."""

    lookback: int  # fewest observations per series
    frequency: str  # the spacing of the timestamps ("h", "D", "B", ...)
    covariates: frozenset[str] = frozenset()  # past ones: one list each, aligned with the values
    future_covariates: frozenset[str] = frozenset()  # known ones, with values over the horizon

    @classmethod
    def of(cls, meta: ModelMeta) -> RequestContract:
        """The contract of a saved model's metadata."""
        return cls(
            lookback=meta.lookback,
            frequency=meta.frequency,
            covariates=frozenset(meta.covariates),
            future_covariates=frozenset(meta.future_covariates),
        )

    def changes_to(self, new: RequestContract) -> list[str]:
        """What a client of `self` would have to change to call `new`, one line per field:
        "lookback 24 -> 48", "covariates ['temp'] -> [] (removed: temp)"; empty if nothing."""
        lines = []
        if new.lookback != self.lookback:
            lines.append(f"lookback {self.lookback} -> {new.lookback}")
        if new.frequency != self.frequency:
            lines.append(f"frequency {self.frequency!r} -> {new.frequency!r}")
        for label, old_names, new_names in (
            ("covariates", self.covariates, new.covariates),
            ("future_covariates", self.future_covariates, new.future_covariates),
        ):
            if old_names != new_names:
                delta = [
                    f"{word}: {', '.join(sorted(names))}"
                    for word, names in (
                        ("added", new_names - old_names),
                        ("removed", old_names - new_names),
                    )
                    if names
                ]
                lines.append(
                    f"{label} {sorted(old_names)} -> {sorted(new_names)} ({'; '.join(delta)})"
                )
        return lines

    def describe(self) -> str:
        """One line for the README table and the CLI: "lookback 24, frequency 'h', ..."."""
        parts = [f"lookback {self.lookback}", f"frequency {self.frequency!r}"]
        if self.covariates:
            parts.append(f"covariates {sorted(self.covariates)}")
        if self.future_covariates:
            parts.append(f"future_covariates {sorted(self.future_covariates)}")
        return ", ".join(parts)


def contract_of_directory(directory: Path) -> RequestContract:
    """The contract of a downloaded forecaster directory (its meta.json).

    Raises:
        ModelFileError: no meta.json, or a malformed one.
    """
    meta = meta_from_dict(read_json(directory, "meta.json"), str(directory / "meta.json"))
    return RequestContract.of(meta)


def contract_of_version(tracker: Tracker, name: str, version: int) -> RequestContract:
    """The contract of registered version `version` of `name` (downloads its forecaster).

    Raises:
        TrackingError: unknown model or version, or one not logged by `forecast train`.
        ModelFileError: its meta.json is missing or malformed.
    """
    with tempfile.TemporaryDirectory(prefix="forecast-contract-") as tmp:
        return contract_of_directory(tracker.download_forecaster(name, version, Path(tmp)))


class ContractChangeError(ExperimentError):
    """A promotion would change the request contract clients rely on."""
