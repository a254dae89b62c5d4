"""Benchmarks and evaluation tooling for Manara (run from the repository root)."""
