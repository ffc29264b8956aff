"""auditor: reproducibility audits for deep-learning training runs."""

__version__ = "0.4.0"
