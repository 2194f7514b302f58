"""Revisit: the front door — settings and the `revisit` command line."""

__version__ = "0.1.0"
