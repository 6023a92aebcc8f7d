"""Where series come from: bundled datasets (`bundled`), user CSV/Parquet files (`files`).

Each source returns a validated `training.data.frame.SeriesFrame`; `training.data.catalogue` is the
public entry point (`load_dataset`, `load_file`).
"""
