"""Frequencies and calendar features, in NumPy only.

One small vocabulary of frequency strings is used everywhere (configs, saved metadata, the data
layer, the service):

    "h"      hourly            "<n>h"   every n hours (e.g. "3h")
    "<n>min" every n minutes   "D"      daily
    "B"      business days (Mon-Fri; exchange holidays may be absent)
    "W"      weekly (a fixed 7-day step)

Calendar features are sin/cos pairs of the position in the day (sub-daily data), in the week
(daily and finer) and in the year (all), so they are known for any future timestamp.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from models.errors import ConfigError

_FORMS = '"h", "<n>h", "<n>min", "D", "B" or "W"'
_PATTERN = re.compile(r"^(\d*)(min|h|D|B|W)$")
_SECONDS_PER_DAY = 86_400
_DAYS_PER_YEAR = 365.2425
_DAILY_SEASONS = {"D": 7, "B": 5, "W": 52}  # steps per season of daily and coarser data


@dataclass(frozen=True)
class Frequency:
    """A parsed frequency.

    Attributes:
        text: the canonical string, e.g. "15min", "h", "B".
        unit: "min", "h", "D", "B" or "W".
        multiple: how many units one step spans (1 unless written, e.g. 15 for "15min").
    """

    text: str
    unit: str
    multiple: int

    @property
    def business(self) -> bool:
        """True for business-day series, whose steps skip weekends."""
        return self.unit == "B"

    @property
    def step(self) -> np.timedelta64:
        """The fixed step between timestamps (one weekday for "B")."""
        seconds = {"min": 60, "h": 3600, "D": 86_400, "B": 86_400, "W": 7 * 86_400}[self.unit]
        return np.timedelta64(seconds * self.multiple, "s")


def parse_frequency(freq: str) -> Frequency:
    """Parse a frequency string of our vocabulary.

    Raises:
        ConfigError: when `freq` is not one of the accepted forms.
    """
    match = _PATTERN.match(freq.strip()) if isinstance(freq, str) else None
    if match is None:
        raise ConfigError(f"frequency {freq!r} is not supported; use {_FORMS}")
    count, unit = match.groups()
    multiple = int(count) if count else 1
    if multiple < 1:
        raise ConfigError(f"frequency {freq!r} has a zero multiple; use {_FORMS}")
    if unit in ("D", "B", "W") and multiple != 1:
        raise ConfigError(f"frequency {freq!r}: multiples are allowed only for min and h")
    if unit == "min" and multiple == 60:
        unit, multiple = "h", 1
    text = unit if multiple == 1 else f"{multiple}{unit}"
    return Frequency(text=text, unit=unit, multiple=multiple)


def season_length(freq: str) -> int:
    """Steps in one natural season: a day for sub-daily data, a week for daily, a year weekly.

    h: 24, 15min: 96, 3h: 8, D: 7, B: 5, W: 52.
    """
    f = parse_frequency(freq)
    if f.unit in _DAILY_SEASONS:
        return _DAILY_SEASONS[f.unit]
    per_day = _SECONDS_PER_DAY // int(f.step / np.timedelta64(1, "s"))
    return max(int(per_day), 1)


def _as_seconds(timestamps: np.ndarray) -> np.ndarray:
    return np.asarray(timestamps).astype("datetime64[s]")


def future_timestamps(last: np.ndarray, freq: str, horizon: int) -> np.ndarray:
    """[B] last timestamps of each history (datetime64) -> [B, H] datetime64[s] that follow.

    Business-day series skip weekends (holidays are not known here, so a forecast may land on
    one).
    """
    f = parse_frequency(freq)
    last_s = _as_seconds(last).reshape(-1)  # [B]
    steps = np.arange(1, horizon + 1)  # [H]
    if not f.business:
        return last_s[:, None] + steps[None, :] * f.step  # [B, H]
    days = last_s.astype("datetime64[D]")  # [B]
    time_of_day = last_s - days.astype("datetime64[s]")  # [B]
    # roll="backward": a history ending on a weekend counts from the Friday before.
    future_days = np.busday_offset(days[:, None], steps[None, :], roll="backward")  # [B, H]
    out: np.ndarray = future_days.astype("datetime64[s]") + time_of_day[:, None]  # [B, H]
    return out


def is_on_frequency(timestamps: np.ndarray, freq: str) -> int | None:
    """None when `timestamps` [T] increase by exactly one step of `freq`, else the index of the
    first timestamp that breaks the rule.

    For "B" every stamp must be a weekday and the stamps must increase; a missing weekday
    (an exchange holiday) is allowed, since trading calendars skip them.
    """
    f = parse_frequency(freq)
    ts = _as_seconds(timestamps).reshape(-1)  # [T]
    if ts.size == 0:
        return None
    if f.business:
        days = ts.astype("datetime64[D]")
        weekday_ok = np.is_busday(days)
        increasing = np.concatenate([[True], np.diff(ts) > np.timedelta64(0, "s")])
        bad = np.flatnonzero(~(weekday_ok & increasing))
    else:
        steps_ok = np.diff(ts) == f.step  # [T-1]
        bad = np.flatnonzero(~steps_ok) + 1
    return int(bad[0]) if bad.size else None


def calendar_width(freq: str) -> int:
    """Number of calendar feature columns `calendar_features` returns for `freq`."""
    return {"min": 6, "h": 6, "D": 4, "B": 4, "W": 2}[parse_frequency(freq).unit]


def calendar_features(timestamps: np.ndarray, freq: str) -> np.ndarray:
    """Sin/cos encodings of the calendar position: [..., T] datetime64 -> [..., T, K] float32.

    Columns (K = calendar_width(freq)): [sin, cos] of the time of day (sub-daily only), of the
    day of the week (daily and finer), and of the position in the year (always).
    """
    f = parse_frequency(freq)
    ts = _as_seconds(timestamps)  # [..., T]
    seconds = ts.astype(np.int64)  # [..., T] since the epoch
    days = np.floor_divide(seconds, _SECONDS_PER_DAY)  # [..., T]
    angles = []
    if f.unit in ("min", "h"):  # sub-daily: the time of day
        angles.append((seconds - days * _SECONDS_PER_DAY) / _SECONDS_PER_DAY)
    if f.unit in ("min", "h", "D", "B"):
        angles.append(((days + 3) % 7) / 7.0)  # 1970-01-01 was a Thursday: Monday -> 0
    year_start = ts.astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)
    angles.append((seconds - year_start) / (_DAYS_PER_YEAR * _SECONDS_PER_DAY))
    columns = []
    for fraction in angles:
        radians = 2.0 * np.pi * fraction
        columns += [np.sin(radians), np.cos(radians)]
    return np.stack(columns, axis=-1).astype(np.float32)  # [..., T, K]
