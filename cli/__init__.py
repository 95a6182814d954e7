"""`clickstream`: the command that sets up, runs, demonstrates and measures the pipeline."""
