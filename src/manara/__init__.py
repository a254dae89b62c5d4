"""Manara: a sovereign, offline data & AI hub."""

__version__ = "0.1.0"
