"""The scrape interval the operator's windows are built on: its flag, else Prometheus's global
``scrape_interval`` (read from ``/api/v1/status/config``), else 30 s."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kubeagora.devcluster.cluster import free_ports
from kubeagora.devcluster.prometheus import scrape_config
from kubeagora.operator.metrics_source import MetricsUnavailable
from kubeagora.operator.scrape_interval import (
    DEFAULT_SCRAPE_INTERVAL_S,
    duration_s,
    global_scrape_interval_s,
    read_scrape_interval_s,
    scrape_interval_s,
)


@pytest.mark.parametrize(("text", "seconds"), [("15s", 15.0), ("1m", 60.0), ("1m30s", 90.0), ("500ms", 0.5),
                                                ("2h", 7200.0), ("1d", 86400.0), (" 30s ", 30.0)])
def test_prometheus_durations_are_read_in_seconds(text: str, seconds: float) -> None:
    assert duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "s", "1.5s", "-15s", "15 s", "0s", "30s1m", "fifteen"])
def test_anything_but_a_positive_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        duration_s(text)


def test_the_global_interval_of_a_configuration_and_prometheus_default_without_one() -> None:
    import yaml

    assert global_scrape_interval_s(yaml.safe_dump(scrape_config({"app": ["127.0.0.1:1"]}, 2.0))) == 2.0
    assert global_scrape_interval_s("global:\n  scrape_interval: 15s\n  scrape_timeout: 10s\n") == 15.0
    assert global_scrape_interval_s("scrape_configs: []\n") == 60.0  # Prometheus's default, 1 m
    for bad in ("[1, 2]", "global: [", "global: 3", "global:\n  scrape_interval: often\n"):
        with pytest.raises(ValueError, match=r"configuration|YAML|mapping|duration"):
            global_scrape_interval_s(bad)


class FakePrometheus(BaseHTTPRequestHandler):
    body: bytes = b""
    status: int = 200

    def do_GET(self) -> None:
        if self.path != "/api/v1/status/config":
            self.send_error(404)
            return
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[tuple[str, type[FakePrometheus]]]:
    handler = type("Handler", (FakePrometheus,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    finally:
        server.shutdown()
        server.server_close()


def answer(handler: type[FakePrometheus], payload: object, status: int = 200) -> None:
    handler.body = json.dumps(payload).encode()
    handler.status = status


def test_the_interval_is_read_from_the_status_config_endpoint(prometheus: tuple[str, type[FakePrometheus]]) -> None:
    url, handler = prometheus
    answer(handler, {"status": "success", "data": {"yaml": "global:\n  scrape_interval: 15s\n"}})
    assert read_scrape_interval_s(url) == 15.0


@pytest.mark.parametrize(("payload", "status", "reason"), [
    ({"status": "error"}, 500, "500"),
    ({"status": "success"}, 200, "data"),
    ({"status": "success", "data": {"yaml": "global:\n  scrape_interval: often\n"}}, 200, "often"),
])
def test_an_answer_without_a_configuration_is_metrics_unavailable_naming_the_endpoint(
    prometheus: tuple[str, type[FakePrometheus]], payload: object, status: int, reason: str
) -> None:
    url, handler = prometheus
    answer(handler, payload, status)
    with pytest.raises(MetricsUnavailable, match=rf"/api/v1/status/config: .*{reason}"):
        read_scrape_interval_s(url)


def test_the_flag_wins_then_prometheus_then_30_s_with_a_warning(
    prometheus: tuple[str, type[FakePrometheus]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = prometheus
    answer(handler, {"status": "success", "data": {"yaml": "global:\n  scrape_interval: 10s\n"}})
    assert scrape_interval_s(url, 5.0) == 5.0
    assert scrape_interval_s(url, None) == 10.0
    (port,) = free_ports(1)  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="kubeagora.operator"):
        assert scrape_interval_s(f"http://127.0.0.1:{port}", None, timeout_s=2) == DEFAULT_SCRAPE_INTERVAL_S
    assert "--scrape-interval" in caplog.text
    assert f"127.0.0.1:{port}" in caplog.text
