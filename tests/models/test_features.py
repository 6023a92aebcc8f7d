import numpy as np
import pytest

from models.errors import ConfigError
from models.features import (
    calendar_features,
    calendar_width,
    future_timestamps,
    is_on_frequency,
    parse_frequency,
    season_length,
)


@pytest.mark.parametrize(
    ("freq", "season"), [("h", 24), ("15min", 96), ("3h", 8), ("D", 7), ("B", 5), ("W", 52)]
)
def test_season_length(freq: str, season: int) -> None:
    assert season_length(freq) == season


def test_parse_normalises_sixty_minutes() -> None:
    assert parse_frequency("60min").text == "h"


@pytest.mark.parametrize("bad", ["hourly", "2D", "0h", "", "M"])
def test_bad_frequency_names_the_value_and_forms(bad: str) -> None:
    with pytest.raises(
        ConfigError, match=r"frequency .* (is not supported|zero multiple|multiples)"
    ):
        parse_frequency(bad)


def test_future_hourly_and_weekly() -> None:
    last = np.array(["2024-01-01T23:00"], dtype="datetime64[s]")
    out = future_timestamps(last, "h", 3)
    assert out.shape == (1, 3)
    assert str(out[0, 0]) == "2024-01-02T00:00:00"
    weekly = future_timestamps(np.array(["2024-01-01"], dtype="datetime64[s]"), "W", 2)
    assert str(weekly[0, 1]) == "2024-01-15T00:00:00"


def test_future_business_days_skip_weekend() -> None:
    friday = np.array(["2024-01-05", "2024-01-08"], dtype="datetime64[s]")
    out = future_timestamps(friday, "B", 2)
    assert [str(x)[:10] for x in out[0]] == ["2024-01-08", "2024-01-09"]
    assert [str(x)[:10] for x in out[1]] == ["2024-01-09", "2024-01-10"]


def test_is_on_frequency() -> None:
    hourly = np.arange("2024-01-01T00", "2024-01-01T05", dtype="datetime64[h]")
    assert is_on_frequency(hourly, "h") is None
    gap = np.delete(hourly, 2)
    assert is_on_frequency(gap, "h") == 2
    # business days: a holiday may be absent, a Saturday may not be present
    days = np.array(["2024-01-11", "2024-01-12", "2024-01-16"], dtype="datetime64[D]")
    assert is_on_frequency(days, "B") is None
    saturday = np.array(["2024-01-12", "2024-01-13"], dtype="datetime64[D]")
    assert is_on_frequency(saturday, "B") == 1
    backwards = np.array(["2024-01-12", "2024-01-11"], dtype="datetime64[D]")
    assert is_on_frequency(backwards, "B") == 1


def test_calendar_features_shape_and_values() -> None:
    ts = np.array([["2024-01-01T00:00", "2024-01-01T06:00"]], dtype="datetime64[s]")
    feats = calendar_features(ts, "h")
    assert feats.shape == (1, 2, calendar_width("h"))
    assert feats.dtype == np.float32
    # midnight: sin 0, cos 1; 06:00: sin 1, cos 0 (time of day comes first)
    np.testing.assert_allclose(feats[0, 0, :2], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(feats[0, 1, :2], [1.0, 0.0], atol=1e-6)
    # 2024-01-01 is a Monday: weekday angle 0
    np.testing.assert_allclose(feats[0, 0, 2:4], [0.0, 1.0], atol=1e-6)
    assert calendar_features(ts[0], "W").shape == (2, 2)
    assert calendar_features(ts[0], "B").shape == (2, 4)
