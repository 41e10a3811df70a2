"""relman - small release-management helpers."""
__version__ = "0.4.1"
