"""The toolkit version (single source; pyproject reads the same number)."""

__version__ = "0.1.0"
