"""The options several `forecast` commands share, each declared once as a typer alias.

A command names one as the type of its parameter (`series: options.Series = None`), so the
flag, its help and its type read the same in every command that takes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Series store database, also used for the forecast log, locks and schedule state "
        "(default: $FORECAST_DATABASE_URL, else sqlite:///./data/series.db).",
    ),
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlruns/mlflow.db).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")]
AllowContractChange = Annotated[
    bool,
    typer.Option(
        "--allow-contract-change",
        help="Let the gate promote a model whose look-back, frequency or covariates differ "
        "from the champion's (clients must change their requests).",
    ),
]
AllowWorseThanBaseline = Annotated[
    bool,
    typer.Option(
        "--allow-worse-than-baseline",
        help="Let the gate promote a model that does not beat naive / seasonal naive.",
    ),
]
Series = Annotated[str | None, typer.Option("--series", help="Series-store ids, comma-separated.")]
TimeCol = Annotated[str | None, typer.Option("--time-col", help="Timestamp column of a file.")]
TargetCol = Annotated[str | None, typer.Option("--target-col", help="Target column of a file.")]
IdCol = Annotated[str | None, typer.Option("--id-col", help="Series id column of a file.")]
Freq = Annotated[
    str | None,
    typer.Option(
        "--freq",
        help="h, D, B, W, <n>min or <n>h (file only; must match the timestamps, which it "
        "is inferred from when omitted).",
    ),
]
Dataset = Annotated[str | None, typer.Option("--dataset", help="Bundled dataset, e.g. load/etth1.")]
DataFile = Annotated[Path | None, typer.Option("--data", help="Your CSV or Parquet file.")]
Covariates = Annotated[
    str | None, typer.Option("--covariates", help="Comma-separated past covariates.")
]
Horizon = Annotated[int | None, typer.Option("--horizon", help="Forecast steps.")]
LastRows = Annotated[
    int | None, typer.Option("--last-rows", help="Use only the newest N rows per series.")
]
RegisteredName = Annotated[
    str | None, typer.Option("--name", help="Registered model (default: from the dataset).")
]
Protocol = Annotated[str | None, typer.Option("--protocol", help="ratio (default) or ett.")]
Device = Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster (host:port, ray://host:port or auto); default: $RAY_ADDRESS, else Ray "
        "starts on this machine.",
    ),
]
