"""Where series come from: bundled datasets (`bundled`), user CSV/Parquet files (`files`).

Each source returns a validated `training.frame.SeriesFrame`; `training.datasets` is the
public entry point (`load_dataset`, `load_file`).
"""
