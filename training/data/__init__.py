"""Where series come from: the canonical `SeriesFrame`, the catalogue of bundled datasets, and
the sources that load a bundled file, a user's CSV/Parquet or the series store, with the fill
policy that repairs or rejects gaps.

May import: `models`, `training.errors`, `training.settings`, `training.store`.
"""
