"""flowmake: a make-like pipeline runner for data work."""

__version__ = "0.1.0"
