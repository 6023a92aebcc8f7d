"""User files (CSV / Parquet) -> SeriesFrame: happy paths, fill policies, and every bad input
rule with its message pinned."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data.fill import FLAGS
from training.data.sources.files import load_file
from training.errors import DataError

WriteCsv = Callable[[str, str], Path]


def _hourly(
    n: int, *, start: str = "2024-01-01", skip: tuple[int, ...] = (), sid: str | None = None
) -> str:
    stamps = pd.date_range(start, periods=n, freq="h")
    lines = []
    for k, stamp in enumerate(stamps):
        if k in skip:
            continue
        prefix = f"{sid}," if sid else ""
        lines.append(f"{prefix}{stamp:%Y-%m-%d %H:%M:%S},{float(k)},{k % 3}")
    return "\n".join(lines)


def _panel(write_csv: WriteCsv, name: str = "panel.csv", *, skip_b: tuple[int, ...] = ()) -> Path:
    body = _hourly(12, sid="b", skip=skip_b) + "\n" + _hourly(12, sid="a")
    return write_csv(name, "id,time,load,temp\n" + body)


def test_csv_panel_is_sorted_typed_and_inferred_hourly(write_csv: WriteCsv) -> None:
    frame = load_file(
        _panel(write_csv), time_col="time", target_col="load", id_col="id", covariates=["temp"]
    )
    assert frame.series_ids() == ["a", "b"]
    assert (frame.rows, frame.frequency, frame.target) == (24, "h", "load")
    assert list(frame.table.columns) == ["series_id", "timestamp", "value", "temp"]
    assert frame.table["timestamp"].dtype == "datetime64[ns]"
    assert frame.notes == ("frequency 'h' inferred from the median step",)
    assert frame.source.endswith("panel.csv")


def test_single_series_id_is_the_file_stem(write_csv: WriteCsv) -> None:
    path = write_csv("meter.csv", "time,load,temp\n" + _hourly(12))
    frame = load_file(path, time_col="time", target_col="load", freq="h")
    assert frame.series_ids() == ["meter"] and frame.notes == ()


def test_interpolate_fills_short_gaps_linearly(write_csv: WriteCsv) -> None:
    path = _panel(write_csv, skip_b=(3, 4, 5))
    frame = load_file(
        path,
        time_col="time",
        target_col="load",
        id_col="id",
        freq="h",
        covariates=["temp"],
        min_rows=8,
        fill_limit=0.25,
    )
    b = frame.table[frame.table["series_id"] == "b"]
    np.testing.assert_allclose(b["value"].to_numpy(), np.arange(12.0))
    assert len(b) == 12
    assert frame.notes == (
        "series 'b': 3 missing value(s) of 'load' filled by interpolate (3 absent timestamp(s); "
        "25.0% of 12 values)",
        "series 'b': 3 missing value(s) of 'temp' filled by interpolate (3 absent timestamp(s); "
        "25.0% of 12 values)",
    )


def test_ffill_carries_forward_and_empty_cells_count_as_missing(write_csv: WriteCsv) -> None:
    text = "time,load\n" + "\n".join(
        f"2024-01-0{d} 00:00:00,{'' if d == 4 else d}" for d in range(1, 10)
    )
    path = write_csv("daily.csv", text)
    frame = load_file(
        path, time_col="time", target_col="load", fill="ffill", min_rows=5, fill_limit=0.2
    )
    assert frame.frequency == "D"
    assert frame.table["value"].tolist() == [1, 2, 3, 3, 5, 6, 7, 8, 9]


def test_business_days_inferred_and_holidays_filled(write_csv: WriteCsv) -> None:
    days = pd.bdate_range("2024-01-01", periods=15).delete([6])
    path = write_csv(
        "px.csv", "Date,Close\n" + "\n".join(f"{d:%Y-%m-%d},{k}" for k, d in enumerate(days))
    )
    frame = load_file(path, time_col="Date", target_col="Close", fill="ffill", fill_limit=0.1)
    assert frame.frequency == "B" and frame.rows == 15


def test_parquet_with_time_zone_is_converted_to_utc(tmp_path: Path) -> None:
    stamps = pd.date_range("2024-03-01", periods=20, freq="15min", tz="Europe/Berlin")
    path = tmp_path / "meter.parquet"
    pd.DataFrame({"ts": stamps, "kw": np.arange(20, dtype=np.int64)}).to_parquet(path)
    frame = load_file(path, time_col="ts", target_col="kw")
    assert frame.frequency == "15min"
    assert frame.start == pd.Timestamp("2024-02-29 23:00")
    assert frame.table["value"].dtype == np.float64
    assert "converted to UTC and made naive" in frame.notes[0]


# ---- bad input: every rule names the file, the row or column, and the fix ----


def test_missing_column_lists_the_columns(write_csv: WriteCsv) -> None:
    path = _panel(write_csv)
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: column 'Load' not found; the file has columns: id, time, load, temp. "
            "Fix: pass one of them"
        ),
    ):
        load_file(path, time_col="time", target_col="Load", id_col="id")
    with pytest.raises(DataError, match="column 'humidity' not found"):
        load_file(path, time_col="time", target_col="load", id_col="id", covariates=["humidity"])


def test_unparseable_timestamp_names_row_and_value(write_csv: WriteCsv) -> None:
    rows = _hourly(12).splitlines()
    rows[4] = "2024-01-01 0x:00:00,4.0,1"
    path = write_csv("bad_time.csv", "time,load,temp\n" + "\n".join(rows))
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: row 5 (line 6): timestamp '2024-01-01 0x:00:00' in column 'time' cannot "
            "be parsed. Fix: write every timestamp as ISO 8601"
        ),
    ):
        load_file(path, time_col="time", target_col="load")


def test_empty_timestamp_or_id_cell_names_the_row(write_csv: WriteCsv) -> None:
    rows = _hourly(12, sid="a").splitlines()
    rows[3] = "a,,3.0,0"
    path = write_csv("holes.csv", "id,time,load,temp\n" + "\n".join(rows))
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: row 4 (line 5): timestamp column 'time' is empty. Fix: give every row"
        ),
    ):
        load_file(path, time_col="time", target_col="load", id_col="id")
    rows[3] = ",2024-01-01 03:00:00,3.0,0"
    path = write_csv("holes.csv", "id,time,load,temp\n" + "\n".join(rows))
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: row 4 (line 5): id column 'id' is empty. Fix: give every row a series id"
        ),
    ):
        load_file(path, time_col="time", target_col="load", id_col="id")


def test_header_only_file_is_too_short(write_csv: WriteCsv) -> None:
    path = write_csv("empty.csv", "time,load")
    with pytest.raises(
        DataError, match=re.escape(f"{path}: the file has 0 data rows; at least 10 are needed")
    ):
        load_file(path, time_col="time", target_col="load")


def test_duplicate_timestamps_name_both_rows_and_the_series(write_csv: WriteCsv) -> None:
    body = _hourly(12, sid="a") + "\n" + _hourly(12, sid="b") + "\nb,2024-01-01 03:00:00,9,9"
    path = write_csv("dup.csv", "id,time,load,temp\n" + body)
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: series 'b' has duplicate timestamp 2024-01-01 03:00:00 in row 16 (line 17) "
            "and row 25 (line 26). Fix: keep one row per series and timestamp"
        ),
    ):
        load_file(path, time_col="time", target_col="load", id_col="id")


def test_same_timestamp_in_two_series_is_not_a_duplicate(write_csv: WriteCsv) -> None:
    frame = load_file(_panel(write_csv), time_col="time", target_col="load", id_col="id")
    assert frame.n_series == 2


def test_non_numeric_target_names_row_and_value(write_csv: WriteCsv) -> None:
    rows = _hourly(12).splitlines()
    rows[7] = "2024-01-01 07:00:00,12 kW,1"
    path = write_csv("units.csv", "time,load,temp\n" + "\n".join(rows))
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: row 8 (line 9): target column 'load' has non-numeric value '12 kW'. "
            "Fix: write a number"
        ),
    ):
        load_file(path, time_col="time", target_col="load")


def test_non_numeric_covariate_names_row(write_csv: WriteCsv) -> None:
    rows = _hourly(12).splitlines()
    rows[2] = "2024-01-01 02:00:00,2.0,warm"
    path = write_csv("cov.csv", "time,load,temp\n" + "\n".join(rows))
    with pytest.raises(
        DataError,
        match=r"row 3 \(line 4\): covariate column 'temp' has "
        r"non-numeric value 'warm'",
    ):
        load_file(path, time_col="time", target_col="load", covariates=["temp"])


def test_too_few_rows_gives_count_and_minimum(write_csv: WriteCsv) -> None:
    body = _hourly(12, sid="a") + "\n" + _hourly(4, sid="b")
    path = write_csv("short.csv", "id,time,load,temp\n" + body)
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: series 'b' has 4 rows; at least 10 are needed. Fix: supply a longer history"
        ),
    ):
        load_file(path, time_col="time", target_col="load", id_col="id")


def test_gap_longer_than_max_gap_is_rejected_with_its_row(write_csv: WriteCsv) -> None:
    path = _panel(write_csv, skip_b=(3, 4, 5))
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: after row 3 (line 4): 'load' of series 'b' at 2024-01-01 03:00:00 begins a "
            "gap of 3 steps, longer than max_gap=2. Fix: fill the gaps in the file, use "
            "fill='ffill', or raise max_gap"
        ),
    ):
        load_file(path, time_col="time", target_col="load", id_col="id", max_gap=2, min_rows=8)


def test_reject_policy_names_the_first_hole(write_csv: WriteCsv) -> None:
    path = _panel(write_csv, skip_b=(6,))
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: after row 6 (line 7): 'load' of series 'b' at 2024-01-01 06:00:00 is "
            "missing and fill='reject'. Fix: fill the gaps in the file, use fill='ffill', or "
            "raise max_gap (fill='interpolate' fills short gaps)"
        ),
    ):
        load_file(path, time_col="time", target_col="load", id_col="id", fill="reject")


def test_empty_cell_at_the_start_cannot_be_filled(write_csv: WriteCsv) -> None:
    rows = _hourly(12).splitlines()
    rows[0] = "2024-01-01 00:00:00,,0"
    path = write_csv("lead.csv", "time,load,temp\n" + "\n".join(rows))
    for fill in ("interpolate", "ffill"):
        with pytest.raises(
            DataError,
            match=re.escape(
                f"{path}: row 1 (line 2): 'load' of series 'lead' at 2024-01-01 00:00:00 "
                "starts the series, so nothing precedes it to fill from"
            ),
        ):
            load_file(path, time_col="time", target_col="load", fill=fill)


def test_empty_cell_at_the_end_cannot_be_interpolated(write_csv: WriteCsv) -> None:
    rows = _hourly(12).splitlines()
    rows[-1] = "2024-01-01 11:00:00,,0"
    path = write_csv("tail.csv", "time,load,temp\n" + "\n".join(rows))
    with pytest.raises(
        DataError,
        match=r"row 12 \(line 13\): 'load' .* ends the series, so it "
        r"cannot be interpolated",
    ):
        load_file(path, time_col="time", target_col="load")
    filled = load_file(path, time_col="time", target_col="load", fill="ffill", fill_limit=0.09)
    assert filled.rows == 12


def test_off_grid_timestamp_is_rejected_with_its_row(write_csv: WriteCsv) -> None:
    rows = _hourly(12).splitlines()
    rows[5] = "2024-01-01 05:30:00,5.0,2"
    path = write_csv("offgrid.csv", "time,load,temp\n" + "\n".join(rows))
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: row 6 (line 7): timestamp 2024-01-01 05:30:00 of series 'offgrid' is off "
            "the 'h' grid that starts at 2024-01-01 00:00:00. Fix: resample the file to one "
            "frequency, or check that freq matches the data"
        ),
    ):
        load_file(path, time_col="time", target_col="load")


def test_unknown_frequency_given_or_inferred(write_csv: WriteCsv) -> None:
    path = write_csv("meter.csv", "time,load,temp\n" + _hourly(12))
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: unknown frequency: frequency 'hourly' is not supported; use \"h\""
        ),
    ):
        load_file(path, time_col="time", target_col="load", freq="hourly")
    monthly = pd.date_range("2020-01-31", periods=12, freq="ME")
    path = write_csv("monthly.csv", "time,load\n" + "\n".join(f"{d:%Y-%m-%d},1" for d in monthly))
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: unknown frequency: the median step between timestamps is 31 days"
        ),
    ):
        load_file(path, time_col="time", target_col="load")


def test_unknown_fill_policy(write_csv: WriteCsv) -> None:
    path = write_csv("meter.csv", "time,load,temp\n" + _hourly(12))
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: fill='zero': fill policy 'zero' is unknown; use one of interpolate, "
            "ffill, reject"
        ),
    ):
        load_file(path, time_col="time", target_col="load", fill="zero")


def test_file_not_found_and_unreadable_formats(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(
        DataError, match=re.escape(f"{missing}: file not found. Fix: check the path")
    ):
        load_file(missing, time_col="t", target_col="y")
    sheet = tmp_path / "data.xlsx"
    sheet.write_bytes(b"PK\x03\x04")
    with pytest.raises(
        DataError,
        match=re.escape(f"{sheet}: unreadable format '.xlsx'; use a .csv or .parquet file"),
    ):
        load_file(sheet, time_col="t", target_col="y")
    broken = tmp_path / "broken.parquet"
    broken.write_text("time,load\n2024-01-01,1\n")
    with pytest.raises(
        DataError,
        match=re.escape(f"{broken}: cannot be read as Parquet (")
        + r".*\)\. Fix: save it as a valid Parquet file",
    ):
        load_file(broken, time_col="time", target_col="load")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage\x00\xff")
    with pytest.raises(DataError, match=re.escape(f"{binary}: cannot be read as CSV (")):
        load_file(binary, time_col="time", target_col="load")


# ---- frequency and fill limit: a wrong frequency must not fabricate data ----


def _daily(n: int) -> str:
    return "\n".join(
        f"{d:%Y-%m-%d},{k}.0" for k, d in enumerate(pd.date_range("2024-01-01", periods=n))
    )


def test_given_frequency_must_match_the_timestamps(write_csv: WriteCsv) -> None:
    path = write_csv("daily.csv", "time,load\n" + _daily(30))
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: freq='h' but the timestamps step by 1 day (inferred 'D'). "
            "Fix: use freq='D', or leave freq out to infer it"
        ),
    ):
        load_file(path, time_col="time", target_col="load", freq="h")
    assert load_file(path, time_col="time", target_col="load", freq="D").rows == 30


def test_frequency_mismatch_is_spelled_as_the_cli_flag(write_csv: WriteCsv) -> None:
    path = write_csv("daily.csv", "time,load\n" + _daily(30))
    with pytest.raises(
        DataError,
        match=re.escape(
            "--freq h but the timestamps step by 1 day (inferred 'D'). "
            "Fix: use --freq D, or leave --freq out to infer it"
        ),
    ):
        load_file(path, time_col="time", target_col="load", freq="h", names=FLAGS)


def test_given_frequency_with_no_known_step_is_refused(write_csv: WriteCsv) -> None:
    monthly = pd.date_range("2020-01-31", periods=12, freq="ME")
    path = write_csv("monthly.csv", "time,load\n" + "\n".join(f"{d:%Y-%m-%d},1" for d in monthly))
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: freq='D' but the timestamps step by 31 days, which is none of "
            "hourly/minutely multiples"
        ),
    ):
        load_file(path, time_col="time", target_col="load", freq="D")


def test_fill_above_the_limit_is_refused_with_share_limit_and_option(
    write_csv: WriteCsv,
) -> None:
    path = write_csv("gappy.csv", "time,load,temp\n" + _hourly(20, skip=(5, 6, 7)))
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: series 'gappy': filling would invent 15.0% of 'load' (3 of 20 values at "
            "frequency 'h'), above the fill limit fill_limit=0.05 (5%). Fix: check that freq "
            "matches the data, fill the gaps in the file, or allow it with fill_limit=0.15"
        ),
    ):
        load_file(path, time_col="time", target_col="load")
    with pytest.raises(DataError, match=re.escape("above the fill limit --fill-limit 0.1 (10%)")):
        load_file(path, time_col="time", target_col="load", fill_limit=0.1, names=FLAGS)
    frame = load_file(path, time_col="time", target_col="load", fill_limit=0.15)
    assert frame.rows == 20
    assert frame.notes[-1].endswith("(3 absent timestamp(s); 15.0% of 20 values)")


def test_empty_covariate_cells_count_against_the_limit(write_csv: WriteCsv) -> None:
    rows = _hourly(20).splitlines()
    for k in (3, 9):
        rows[k] = rows[k].rsplit(",", 1)[0] + ","
    path = write_csv("cov.csv", "time,load,temp\n" + "\n".join(rows))
    with pytest.raises(DataError, match=r"filling would invent 10\.0% of 'temp' \(2 of 20"):
        load_file(path, time_col="time", target_col="load", covariates=["temp"])


def test_off_grid_row_in_another_text_format_is_reported_as_off_grid(
    write_csv: WriteCsv,
) -> None:
    rows = _daily(20).splitlines()
    rows[6] = "2024-01-07 12:30,6.0"
    path = write_csv("stray.csv", "time,load\n" + "\n".join(rows))
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: row 7 (line 8): timestamp 2024-01-07 12:30:00 of series 'stray' is off "
            "the 'D' grid that starts at 2024-01-01 00:00:00"
        ),
    ):
        load_file(path, time_col="time", target_col="load")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_gap": 0}, "max_gap=0: must be an integer >= 1"),
        ({"fill_limit": 1.5}, "fill_limit=1.5: must be a share in [0, 1]"),
        ({"fill_limit": -0.1, "names": FLAGS}, "--fill-limit -0.1: must be a share in [0, 1]"),
    ],
)
def test_bad_fill_options_name_the_option(
    write_csv: WriteCsv, kwargs: dict[str, object], message: str
) -> None:
    path = write_csv("meter.csv", "time,load,temp\n" + _hourly(12))
    with pytest.raises(DataError, match=re.escape(message)):
        load_file(path, time_col="time", target_col="load", **kwargs)  # type: ignore[arg-type]
