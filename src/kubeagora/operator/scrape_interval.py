"""How often Prometheus scrapes the workloads, which the operator's query windows are built on.

The operator's ``--scrape-interval`` when given; else Prometheus's own global ``scrape_interval``, read
once at start from ``GET /api/v1/status/config`` (the configuration Prometheus runs, defaults filled
in); else ``DEFAULT_SCRAPE_INTERVAL_S``. A job may scrape at an interval of its own: the global one is
what this reads, so a Prometheus whose workload job differs needs the flag.
"""

from __future__ import annotations

import logging
import re

from kubeagora.operator.metrics_source import SCRAPE_MULTIPLE, MetricsUnavailable

log = logging.getLogger("kubeagora.operator")

DEFAULT_SCRAPE_INTERVAL_S = 30.0
"""Assumed when neither the operator's flag nor Prometheus says (a common setting; Prometheus's own
default is 1 m)."""
PROMETHEUS_DEFAULT = "1m"
"""Prometheus's global scrape_interval when its configuration sets none."""

_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
_DURATION_UNITS_S = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)


def duration_s(text: str) -> float:
    """A Prometheus duration ("15s", "1m30s", "500ms") in seconds; ValueError for anything else or zero."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a Prometheus duration")
    seconds = sum(int(n) * unit for n, unit in zip(match.groups(), _DURATION_UNITS_S, strict=True) if n)
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return seconds


def global_scrape_interval_s(config_yaml: str) -> float:
    """``global.scrape_interval`` of a Prometheus configuration (the YAML that ``/api/v1/status/config``
    answers); Prometheus's default, 1 m, where it is not set. ValueError when the text is not such a
    configuration."""
    import yaml

    try:
        config = yaml.safe_load(config_yaml)
    except yaml.YAMLError as e:
        raise ValueError(f"not YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise ValueError("not a Prometheus configuration")
    settings = config.get("global") or {}
    if not isinstance(settings, dict):
        raise ValueError("global: not a mapping")
    return duration_s(str(settings.get("scrape_interval", PROMETHEUS_DEFAULT)))


def read_scrape_interval_s(url: str, timeout_s: float = 5.0) -> float:
    """The global scrape interval of the Prometheus at ``url`` (``GET /api/v1/status/config``);
    MetricsUnavailable naming the URL when it cannot be read."""
    import requests

    where = f"{url.rstrip('/')}/api/v1/status/config"
    try:
        resp = requests.get(where, timeout=timeout_s)
        resp.raise_for_status()
        return global_scrape_interval_s(str(resp.json()["data"]["yaml"]))
    except (requests.RequestException, ValueError, KeyError, TypeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MetricsUnavailable(f"{where}: {reason}") from None


def scrape_interval_s(url: str, given_s: float | None, timeout_s: float = 5.0) -> float:
    """The scrape interval the query windows are built on: ``given_s`` (the operator's
    ``--scrape-interval``), else the Prometheus's own, else ``DEFAULT_SCRAPE_INTERVAL_S``; logged."""
    if given_s is not None:
        return given_s
    try:
        seconds = read_scrape_interval_s(url, timeout_s)
    except MetricsUnavailable as e:
        log.warning("the scrape interval could not be read from Prometheus (%s): assuming %gs, so query windows "
                    "of %gs (--scrape-interval sets it)", e, DEFAULT_SCRAPE_INTERVAL_S,
                    SCRAPE_MULTIPLE * DEFAULT_SCRAPE_INTERVAL_S)
        return DEFAULT_SCRAPE_INTERVAL_S
    log.info("scrape interval %gs, Prometheus's global scrape_interval: query windows of %gs", seconds,
             SCRAPE_MULTIPLE * seconds)
    return seconds
