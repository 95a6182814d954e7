"""Pipelines of their own for the CLI, the benchmarks and the tests: a sandbox's topics, lake and
indices (pipeline.py), and the Dagster instance folder runs are launched against (instance.py)."""
