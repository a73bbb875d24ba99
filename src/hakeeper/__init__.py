"""hakeeper: a high-availability cluster manager in one Python package."""

__version__ = "0.1.0"
