"""The package version (layer 0: anything may read it)."""

__version__ = "0.1.0"
