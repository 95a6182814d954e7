"""Benchmarks: measured on the real local stack, results written as JSON, never asserted in tests."""
