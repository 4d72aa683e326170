"""Tables and figures from the runs' metrics.json and ranks.parquet."""
