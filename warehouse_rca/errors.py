"""Errors a user can act on. Each carries a message that names what is wrong and where.

The CLI turns any ``RcaError`` into a one-line message and a non-zero exit code
(see ``EXIT_CODES`` in :mod:`warehouse_rca.cli`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class RcaError(Exception):
    """Base class for errors caused by input, configuration or the warehouse."""

    exit_code = 2


class ConfigError(RcaError):
    """A profile, project file or command-line option is invalid."""


class InputError(RcaError):
    """The data asked for cannot support the analysis (unknown column, empty period, ...)."""


class InsufficientHistoryError(InputError):
    """A time series is too short for the requested detection."""


class WarehouseError(RcaError):
    """The warehouse refused or failed a statement."""

    exit_code = 3
