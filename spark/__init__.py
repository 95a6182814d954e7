"""PySpark jobs: pure DataFrame transformations plus thin I/O entry points."""
