"""Errors meant for people: each names the thing that is wrong and how to fix it.

The CLI prints any `JaxdistillError` as one line and exits with status 2; every other exception is a bug.
"""
import math


class JaxdistillError(Exception):
    """Base class of all user-facing errors."""


class DataError(JaxdistillError):
    """A dataset is missing, corrupt, fails its checksum, or cannot be downloaded."""


class ConfigError(JaxdistillError):
    """A configuration value is invalid, or a workdir holds a run with a different config."""


class WorkdirError(JaxdistillError):
    """A workdir cannot be created, written, or read."""


class DataWarning(UserWarning):
    """Data that loads but differs from what was expected (e.g. MHIST split counts); the CLI shows it in one line."""


def positive_finite(value: float) -> bool:
    """True for a finite number > 0, the test of a learning rate or a temperature (a bare `value <= 0` check lets
    nan through)."""
    return math.isfinite(value) and value > 0


class DivergedError(JaxdistillError):
    """A run's losses or learned values stopped being finite (a learning rate too high for the data)."""
