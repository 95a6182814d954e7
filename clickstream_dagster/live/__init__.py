"""The live path: open days reach Elasticsearch after every ingest, with work proportional to the
new rows. `refresh.py` moves a cursor over the landing table and merges the new rows into
`documents.py`'s mergeable documents; the `live_indices` asset (assets/live.py) and the streaming
ingest run it. Its Spark side, the whole-day states a backlog or a restart starts from, is
spark/analytics/live.py; `make bench-live` (bench/live.py) measures it end to end."""
