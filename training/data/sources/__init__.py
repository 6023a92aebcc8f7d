"""Where series come from: bundled datasets (`bundled`), user CSV/Parquet files (`files`) and
the series store (`store`), each returned as a validated `SeriesFrame`."""
