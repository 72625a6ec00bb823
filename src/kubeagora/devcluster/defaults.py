"""The devcluster's defaults that its commands show in their help.

Kept apart from the modules that do the work (`cluster`, `prometheus`: subprocesses, TLS, HTTP, YAML), so
that `kubeagora --help` imports nothing else of the devcluster; those modules take their defaults from here.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_STATE_DIR = Path("~/.local/state/kubeagora/devcluster")
"""Certificates, data, logs and kubeconfigs of `kubeagora devcluster`."""

PROMETHEUS_STATE_DIR = Path("~/.local/state/kubeagora/prometheus")
PROMETHEUS_PORT = 9090
PROMETHEUS_SCRAPE_INTERVAL_S = 2.0

#: Scrape job names; ``manifests/prometheus.yaml`` uses the same ones (a unit test checks).
JOB_MOCK_KUBELET = "kubeagora-mock-kubelet"
JOB_OPERATOR = "kubeagora-operator"
JOB_SCHEDULER_EXTENDER = "kubeagora-scheduler-extender"
