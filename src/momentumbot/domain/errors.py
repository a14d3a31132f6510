"""The exception hierarchy, named by what the operator should do about it."""

from __future__ import annotations


class MomentumbotError(Exception):
    """Base of every error the CLI turns into a one-line message and an exit code."""

    exit_code = 1


class ConfigError(MomentumbotError):
    """The configuration is wrong: fix the named file and key."""

    exit_code = 2


class DataError(MomentumbotError):
    """Input data is wrong or missing: fix or re-import the named file or symbol."""

    exit_code = 3


class RetryLaterError(MomentumbotError):
    """A provider or broker is temporarily unavailable: try again later."""

    exit_code = 4


class OrderRejectedError(MomentumbotError):
    """The broker refused an order."""

    exit_code = 5
