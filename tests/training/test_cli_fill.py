"""`forecast train` and the data's fill policy: --freq checked against the timestamps, fills
above --fill-limit refused, --fill / --max-gap honoured, and every fill note on the console."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from training.cli import app
from training.errors import DataError
from training.jobs.experiment import TrainSpec
from training.jobs.preparation import load_frame

from .test_tracking import fresh_store

TRAIN = ["train", "--family", "esn", "--horizon", "6", "--lookback", "24", "--device", "cpu"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _hourly_csv(path: Path, n: int, skip: tuple[int, ...] = ()) -> Path:
    """`n` hours of a daily cycle; the hours in `skip` are absent from the file."""
    stamps = pd.date_range("2024-01-01", periods=n, freq="h")
    load = 10 + 3 * np.sin(2 * np.pi * np.arange(n) / 24)
    keep = [k for k in range(n) if k not in skip]
    pd.DataFrame({"time": stamps[keep], "load": load[keep]}).to_csv(path, index=False)
    return path


def _file_args(path: Path) -> list[str]:
    return ["--data", str(path), "--time-col", "time", "--target-col", "load"]


def _one_error_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


def test_wrong_freq_names_the_flag_and_the_inferred_frequency(
    runner: CliRunner, tmp_path: Path
) -> None:
    days = pd.date_range("2024-01-01", periods=120, freq="D")
    path = tmp_path / "daily.csv"
    pd.DataFrame({"time": days, "load": np.arange(120.0)}).to_csv(path, index=False)
    result = runner.invoke(app, [*TRAIN, *_file_args(path), "--freq", "h"])
    assert result.exit_code == 2
    assert _one_error_line(result.stderr) == (
        f"error: {path}: --freq h but the timestamps step by 1 day (inferred 'D'). "
        "Fix: use --freq D, or leave --freq out to infer it"
    )


def test_fill_above_the_limit_is_refused_then_allowed_and_noted(
    runner: CliRunner, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # 13 absent hours of 240: 5.4%, above the default limit of 5%
    path = _hourly_csv(tmp_path / "gappy.csv", 240, skip=(*range(100, 124, 2), 150))
    uri = fresh_store(tmp_path_factory, "fill")
    refused = runner.invoke(app, [*TRAIN, *_file_args(path), "--tracking-uri", uri])
    assert refused.exit_code == 2
    assert _one_error_line(refused.stderr) == (
        f"error: {path}: series 'gappy': filling would invent 5.4% of 'load' (13 of 240 "
        "values at frequency 'h'), above the fill limit --fill-limit 0.05 (5%). Fix: check "
        "that --freq matches the data, fill the gaps in the file, or allow it with "
        "--fill-limit 0.06"
    )
    allowed = runner.invoke(
        app, [*TRAIN, *_file_args(path), "--fill-limit", "0.06", "--tracking-uri", uri]
    )
    assert allowed.exit_code == 0, allowed.output
    assert (
        "data: series 'gappy': 13 missing value(s) of 'load' filled by interpolate "
        "(13 absent timestamp(s); 5.4% of 240 values)"
    ) in allowed.stdout
    assert "data: frequency 'h' inferred from the median step" in allowed.stdout


def test_json_output_keeps_fill_notes_off_stdout(
    runner: CliRunner, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = _hourly_csv(tmp_path / "gappy.csv", 240, skip=(100, 101, 102))
    uri = fresh_store(tmp_path_factory, "fill-json")
    args = [*_file_args(path), "--fill", "ffill", "--tracking-uri", uri, "--json"]
    result = runner.invoke(app, [*TRAIN, *args])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)  # exactly one object
    note = "series 'gappy': 3 missing value(s) of 'load' filled by ffill"
    assert any(n.startswith(note) for n in out["data"]["notes"])
    assert f"data: {note}" in result.stderr


def test_max_gap_and_fill_flags_are_named_in_messages(runner: CliRunner, tmp_path: Path) -> None:
    path = _hourly_csv(tmp_path / "hole.csv", 240, skip=(100, 101, 102))
    result = runner.invoke(app, [*TRAIN, *_file_args(path), "--max-gap", "2"])
    assert result.exit_code == 2
    assert _one_error_line(result.stderr) == (
        f"error: {path}: after row 100 (line 101): 'load' of series 'hole' at 2024-01-05 "
        "04:00:00 begins a gap of 3 steps, longer than --max-gap 2. Fix: fill the gaps in the "
        "file, use --fill ffill, or raise --max-gap"
    )
    result = runner.invoke(app, [*TRAIN, *_file_args(path), "--fill", "reject"])
    assert result.exit_code == 2
    assert "is missing and --fill reject" in result.stderr
    result = runner.invoke(app, [*TRAIN, *_file_args(path), "--fill", "zero"])
    assert result.exit_code == 2
    assert "fill = 'zero': input should be 'interpolate', 'ffill' or 'reject'" in result.stderr


def test_fill_flags_do_not_apply_to_bundled_datasets(runner: CliRunner) -> None:
    result = runner.invoke(app, [*TRAIN, "--dataset", "load/etth1", "--max-gap", "3"])
    assert result.exit_code == 2
    assert _one_error_line(result.stderr) == (
        "error: --max-gap applies to a file or the series store, not to the bundled dataset "
        "'load/etth1' (a bundled dataset's fills are fixed). Fix: drop --max-gap"
    )


def test_off_grid_row_is_reported_with_its_row_and_timestamp(
    runner: CliRunner, tmp_path: Path
) -> None:
    days = [f"{d:%Y-%m-%d}" for d in pd.date_range("2024-01-01", periods=60, freq="D")]
    days[9] = "2024-01-10 06:00"
    path = tmp_path / "stray.csv"
    path.write_text("time,load\n" + "\n".join(f"{d},{k}" for k, d in enumerate(days)) + "\n")
    result = runner.invoke(app, [*TRAIN, *_file_args(path)])
    assert result.exit_code == 2
    assert _one_error_line(result.stderr) == (
        f"error: {path}: row 10 (line 11): timestamp 2024-01-10 06:00:00 of series 'stray' is "
        "off the 'D' grid that starts at 2024-01-01 00:00:00. Fix: resample the file to one "
        "frequency, or check that --freq matches the data"
    )


def test_experiment_file_keys_set_the_policy_and_spell_its_messages(tmp_path: Path) -> None:
    _hourly_csv(tmp_path / "gappy.csv", 240, skip=tuple(range(100, 130, 2)))  # 15 of 240
    config = tmp_path / "gappy.toml"
    body = 'family = "esn"\nhorizon = 6\n[data]\nfile = "gappy.csv"\ntime_col = "time"\n'
    config.write_text(body + 'target_col = "load"\n')
    with pytest.raises(DataError, match=r"allow it with fill_limit = 0\.07 in \[data\]$"):
        load_frame(TrainSpec.from_toml(config))
    config.write_text(
        body + 'target_col = "load"\nfill = "ffill"\nmax_gap = 4\nfill_limit = 0.07\n'
    )
    spec = TrainSpec.from_toml(config)
    assert (spec.fill, spec.max_gap, spec.fill_limit) == ("ffill", 4, 0.07)
    assert load_frame(spec).rows == 240
