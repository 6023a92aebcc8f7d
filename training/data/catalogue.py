"""The bundled datasets, declared in one place, and the two loaders every caller uses.

`load_dataset("load/etth1")` reads a bundled file from `data_dir()`; `load_file(path, ...)`
reads a user CSV or Parquet file. Both return a validated `SeriesFrame` whose `notes`
record every policy applied (filled hours, dropped rows, layout changes).

Example:
    >>> frame = load_dataset("stock/aapl", covariates=["Volume"])
    >>> frame.frequency, frame.n_series
    ('B', 1)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

from training.data.frame import SeriesFrame
from training.data.sources import bundled
from training.data.sources.bundled import DatasetSpec
from training.data.sources.files import load_file
from training.errors import DataError

__all__ = ["BUNDLED", "DatasetSpec", "data_dir", "load_dataset", "load_file"]

SALES_WEEK0 = "2017-01-02"
"""The sales file has week indices only; week W0 is anchored at this Monday (documented)."""


_ETT_LOADS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL")
_OHLCV = ("Open", "High", "Low", "Close", "Volume")
_TICKERS = {
    "goog": "Alphabet class C",
    "googl": "Alphabet class A",
    "aapl": "Apple",
    "msft": "Microsoft",
    "amzn": "Amazon",
}


def _stock(ticker: str, company: str) -> DatasetSpec:
    return DatasetSpec(
        name=f"stock/{ticker}",
        path=f"stock/{ticker.upper()}.csv",
        time_col="Date",
        target_col="Adj Close",
        frequency="B",
        covariates=_OHLCV,
        reader="trading_days",
        na_markers=("null",),
        description=f"{company} daily adjusted close (Yahoo Finance), business days",
        licence="MIT (repository); prices are facts",
    )


BUNDLED: dict[str, DatasetSpec] = {
    "load/etth1": DatasetSpec(
        name="load/etth1",
        path="load/ETTh1.csv",
        time_col="date",
        target_col="OT",
        frequency="h",
        covariates=_ETT_LOADS,
        description="ETTh1 transformer oil temperature with six load readings, hourly",
        licence="CC BY-ND 4.0",
    ),
    "load/pjm": DatasetSpec(
        name="load/pjm",
        path="load/PJM.csv",
        time_col="date_time",
        target_col="cleaned demand (MW)",
        frequency="h",
        na_markers=("EMPTY", "MISSING"),
        description="PJM Interconnection demand in MW (EIA-930, cleaned), hourly UTC",
        licence="CC BY 4.0",
    ),
    **{f"stock/{t}": _stock(t, company) for t, company in _TICKERS.items()},
    "demand/bike-hourly": DatasetSpec(
        name="demand/bike-hourly",
        path="demand/hour.csv",
        time_col="dteday+hr",
        target_col="cnt",
        frequency="h",
        covariates=("temp", "atemp", "hum", "windspeed", "weathersit", "workingday", "holiday"),
        reader="hourly_gaps",
        description="Capital Bikeshare rentals per hour with weather (UCI), hourly",
        licence="CC BY 4.0",
    ),
    "demand/sales-weekly": DatasetSpec(
        name="demand/sales-weekly",
        path="demand/Sales_Transactions_Dataset_Weekly.csv",
        time_col="",
        target_col="units",
        id_col="Product_Code",
        frequency="W",
        reader="wide_weekly",
        description=f"UCI weekly sales, 811 products x 52 weeks (W0 anchored at {SALES_WEEK0})",
        licence="CC BY 4.0",
    ),
}


def data_dir() -> Path:
    """The bundled data folder: $FORECAST_DATA_DIR when set, else <repo>/data."""
    return Path(os.environ.get("FORECAST_DATA_DIR") or Path(__file__).resolve().parents[2] / "data")


def load_dataset(name: str, *, covariates: Sequence[str] | None = None) -> SeriesFrame:
    """Load a bundled dataset as a validated long table (cached per process).

    Args:
        name: one of `BUNDLED`, e.g. "load/etth1".
        covariates: columns of `BUNDLED[name].covariates` to carry along; None or () loads
            the target alone. Pass `BUNDLED[name].covariates` for all of them.

    Raises:
        DataError: unknown name (the message lists the names), unknown covariate (it lists
            the available ones), or a missing/unreadable bundled file.
    """
    spec = BUNDLED.get(name)
    if spec is None:
        raise DataError(
            f"dataset {name!r} is not bundled; choose one of: {', '.join(BUNDLED)}. "
            "Fix: pick a name from `forecast datasets`, or load your own file with load_file"
        )
    chosen = tuple(covariates or ())
    unknown = [c for c in chosen if c not in spec.covariates]
    if unknown:
        raise DataError(
            f"dataset {name!r}: covariate {unknown[0]!r} is not available; "
            f"available covariates: {', '.join(spec.covariates) or 'none'}"
        )
    return _load_cached(name, chosen, str(data_dir().resolve()))


@functools.lru_cache(maxsize=64)
def _load_cached(name: str, covariates: tuple[str, ...], root: str) -> SeriesFrame:
    return bundled.read(BUNDLED[name], Path(root), covariates, week0=SALES_WEEK0)
