"""A champion with another request contract (look-back, frequency, covariates, future
covariates) is refused by the gate and by `forecast promote`, saying what changed, unless
overridden; on a real MLflow registry (SQLite in tmp_path) with tiny ESN forecasters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from models import io as models_io
from models.base import ModelMeta, SeriesData
from models.config import ESNConfig
from training.cli import app
from training.registry.contract import ContractChangeError, RequestContract, contract_of_version
from training.registry.gate import promote_by_hand, run_gate
from training.registry.tracking import Tracker

from .test_promotion import HORIZON, LOOKBACK, _values, model_dir, register, score_on, tracker

__all__ = ["model_dir", "tracker"]  # fixtures shared with test_promotion


def _esn(root: Path, lookback: int, frequency: str = "h", covariates: int = 0) -> Path:
    """A tiny fitted ESN saved to `root`, with `covariates` past covariates c0, c1, ..."""
    names = tuple(f"c{i}" for i in range(covariates))
    config = ESNConfig(
        lookback=lookback, max_horizon=HORIZON, reservoir_size=20, washout=24, device="cpu",
        frequency=frequency, covariates=names,
    )  # fmt: skip
    y = _values()
    cov = None
    if covariates:
        columns = [np.cos(np.arange(y.size) / (i + 3)) for i in range(covariates)]  # C x [T]
        cov = np.stack(columns, axis=1).astype(np.float32)  # C x [T] -> [T, C]

    def data(lo: int, hi: int) -> SeriesData:
        return SeriesData(y[lo:hi], covariates=None if cov is None else cov[lo:hi])

    model = models_io.create(config)
    model.fit([data(0, 180)], [data(180 - lookback, 230)])
    directory = root / "forecaster"
    models_io.save(model, directory)
    return directory


@pytest.fixture(scope="module")
def long_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another look-back: 48 instead of 24."""
    return _esn(tmp_path_factory.mktemp("esn48"), 48)


@pytest.fixture(scope="module")
def daily_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Daily, with two past covariates."""
    return _esn(tmp_path_factory.mktemp("esn-daily"), LOOKBACK, "D", covariates=2)


def _champion(tracker: Tracker, name: str, directory: Path) -> int:
    version, _ = register(tracker, name, directory)
    run_gate(
        tracker, name, version, 1.0, metric="mae", margin=0.01, score_champion=score_on(_values())
    )
    assert tracker.aliases(name)["champion"] == version
    return version


def test_gate_refuses_a_better_challenger_with_another_lookback(
    tracker: Tracker, model_dir: Path, long_dir: Path
) -> None:
    name = "contract-gate"
    _champion(tracker, name, model_dir)
    v2, run2 = register(tracker, name, long_dir)
    decision = run_gate(
        tracker, name, v2, 1e-6, metric="mae", margin=0.01,
        score_champion=score_on(_values()), run_id=run2,
    )  # fmt: skip
    assert not decision.promoted
    assert decision.decision == "rejected: request contract changed"
    assert decision.contract_changes == ("lookback 24 -> 48",)
    assert decision.reason == (
        "request contract changed from champion v1: lookback 24 -> 48; its clients' requests "
        f"would be refused. Fix: once the clients send the new contract, run `forecast promote "
        f"{name} 2 --force --reason ...`"
    )
    assert tracker.aliases(name) == {"champion": 1, "challenger": 2}
    tags = tracker.version(name, v2).tags
    assert tags["gate_decision"] == "rejected: request contract changed"
    assert tags["contract_changes"] == "lookback 24 -> 48"
    assert tracker.run_data(run2).tags["contract_changes"] == "lookback 24 -> 48"

    # the same contract still competes on scores alone
    v3, _ = register(tracker, name, model_dir)
    same = run_gate(
        tracker, name, v3, 1e-6, metric="mae", margin=0.01, score_champion=score_on(_values())
    )
    assert same.promoted and same.contract_changes == ()
    assert tracker.version(name, v3).tags["contract_changes"] == ""


def test_gate_promotes_a_contract_change_when_allowed(
    tracker: Tracker, model_dir: Path, long_dir: Path
) -> None:
    name = "contract-allowed"
    _champion(tracker, name, model_dir)
    v2, _ = register(tracker, name, long_dir)
    decision = run_gate(
        tracker, name, v2, 1e-6, metric="mae", margin=0.01,
        score_champion=score_on(_values()), allow_contract_change=True,
    )  # fmt: skip
    assert decision.promoted and decision.decision == "promoted"
    assert decision.contract_overridden
    assert decision.reason.endswith(
        "; request contract changed from champion v1: lookback 24 -> 48; its clients' requests "
        "would be refused (allowed by --allow-contract-change)"
    )
    assert tracker.aliases(name)["champion"] == v2
    assert tracker.version(name, v2).tags["contract_changes"] == "lookback 24 -> 48"


def test_a_worse_challenger_is_rejected_on_scores_not_on_its_contract(
    tracker: Tracker, model_dir: Path, long_dir: Path
) -> None:
    name = "contract-worse"
    _champion(tracker, name, model_dir)
    v2, _ = register(tracker, name, long_dir)
    decision = run_gate(
        tracker, name, v2, 1e6, metric="mae", margin=0.01, score_champion=score_on(_values())
    )
    assert (decision.decision, decision.contract_changes) == ("rejected", ())


def test_promote_refuses_another_contract_unless_forced(
    tracker: Tracker, model_dir: Path, daily_dir: Path
) -> None:
    name = "contract-manual"
    v1 = _champion(tracker, name, model_dir)
    v2, _ = register(tracker, name, daily_dir)
    with pytest.raises(ContractChangeError) as info:
        promote_by_hand(tracker, name, v2, reason="new data feed", user="alice")
    assert str(info.value) == (
        f"{name} v2 changes the request contract of champion v1: frequency 'h' -> 'D'; "
        "covariates [] -> ['c0', 'c1'] (added: c0, c1); clients sending the old contract "
        "would be refused. Fix: pass --force once they send the new one"
    )
    assert tracker.aliases(name)["champion"] == v1  # nothing changed
    assert "promoted_by" not in tracker.version(name, v2).tags

    done = promote_by_hand(tracker, name, v2, reason="new data feed", user="alice", force=True)
    assert done.contract_changes == (
        "frequency 'h' -> 'D'",
        "covariates [] -> ['c0', 'c1'] (added: c0, c1)",
    )
    assert tracker.aliases(name)["champion"] == v2
    assert tracker.version(name, v2).tags["contract_changes"] == "; ".join(done.contract_changes)
    # and back: a rollback is a contract change too
    with pytest.raises(ContractChangeError, match=r"covariates \['c0', 'c1'\] -> \[\] \(removed"):
        promote_by_hand(tracker, name, v1, reason="rollback", user="alice")


def test_forecast_promote_cli_needs_force(
    tracker: Tracker, model_dir: Path, long_dir: Path
) -> None:
    name = "contract-cli"
    _champion(tracker, name, model_dir)
    register(tracker, name, long_dir)
    runner = CliRunner()
    args = ["promote", name, "2", "--reason", "longer look-back", "--tracking-uri", tracker.uri]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2, refused.output
    assert "changes the request contract of champion v1: lookback 24 -> 48" in refused.output
    assert tracker.aliases(name)["champion"] == 1
    forced = runner.invoke(app, [*args, "--force", "--json"])
    assert forced.exit_code == 0, forced.output
    printed = json.loads(forced.output[forced.output.index('{"model_name"') :])
    assert printed["contract_changes"] == ["lookback 24 -> 48"]
    assert tracker.aliases(name)["champion"] == 2
    assert contract_of_version(tracker, name, 2).lookback == 48


def _meta(**fields: object) -> ModelMeta:
    base: dict[str, object] = {
        "family": "gru", "lookback": 24, "max_horizon": 6, "frequency": "h", "target": "y",
    }  # fmt: skip
    return ModelMeta(**{**base, **fields})  # type: ignore[arg-type]


def test_contract_changes_name_every_field() -> None:
    old = RequestContract.of(_meta(covariates=("temp",), future_covariates=("promo",)))
    new = RequestContract.of(
        _meta(lookback=48, frequency="D", covariates=("temp",), future_covariates=("price",))
    )
    assert old.changes_to(new) == [
        "lookback 24 -> 48",
        "frequency 'h' -> 'D'",
        "future_covariates ['promo'] -> ['price'] (added: price; removed: promo)",
    ]
    # order of covariates is not part of the contract: requests send them by name
    reordered = RequestContract.of(_meta(covariates=("b", "a")))
    assert RequestContract.of(_meta(covariates=("a", "b"))).changes_to(reordered) == []
    # neither is what the service computes or rolls: horizon, calendar, target
    assert (
        RequestContract.of(_meta()).changes_to(
            RequestContract.of(_meta(max_horizon=24, calendar=True, target="z"))
        )
        == []
    )
    assert old.describe() == (
        "lookback 24, frequency 'h', covariates ['temp'], future_covariates ['promo']"
    )


def test_train_cli_refuses_a_new_lookback_unless_allowed(tmp_path: Path) -> None:
    """`forecast train` with another --lookback stays challenger; --allow-contract-change
    lets the same change through the gate."""
    t = np.arange(600)
    stamps = np.datetime64("2024-01-01T00:00") + t.astype("timedelta64[h]")
    values = 10 + 3 * np.sin(2 * np.pi * t / 24) + 0.1 * np.cos(t)
    csv = tmp_path / "load.csv"
    csv.write_text(
        "time,load\n" + "".join(f"{s},{v:.4f}\n" for s, v in zip(stamps, values, strict=True))
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"

    def train(lookback: int, *extra: str) -> dict[str, object]:
        result = CliRunner().invoke(
            app,
            ["train", "--data", str(csv), "--time-col", "time", "--target-col", "load",
             "--family", "esn", "--horizon", "6", "--lookback", str(lookback), "--name",
             "contract-cli", "--tracking-uri", uri, "--allow-worse-than-baseline", "--json",
             *extra],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        out: dict[str, object] = json.loads(result.stdout)
        return out

    assert train(24)["promoted"] is True
    refused = train(48)
    assert refused["promoted"] is False and refused["champion_version"] == 1
    assert "lookback 24 -> 48" in json.dumps(refused["gate"])
    # The same better model (it was refused on its contract alone), now allowed through.
    allowed = train(48, "--allow-contract-change")
    assert allowed["promoted"] is True and allowed["champion_version"] == allowed["version"] == 3
