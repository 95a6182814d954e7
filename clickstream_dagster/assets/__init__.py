"""Assets grouped by domain, in data-flow order: ingest, lake, analytics, serving."""
