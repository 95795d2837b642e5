"""flywheel: the system around a large language model."""

__version__ = "0.1.0"
