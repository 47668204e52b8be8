"""Benchmarks of tracker (not part of the test suite). See bench/README.md."""
