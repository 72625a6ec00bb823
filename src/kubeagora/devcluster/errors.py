"""Errors of the devcluster package: each carries one message meant for a person."""

from __future__ import annotations


class DevClusterError(Exception):
    """The local control plane could not be built, started, stopped or inspected."""


class GoMissingError(DevClusterError):
    """Go is absent or older than the control plane module needs."""
