"""The devcluster's Prometheus: its scrape config, the manifest's, and where the binary comes from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeagora.devcluster.prometheus import (
    JOB_MOCK_KUBELET,
    JOB_OPERATOR,
    JOBS,
    PROMETHEUS_ENV,
    PrometheusError,
    PrometheusServer,
    cache_dirname,
    cached_binary,
    duration,
    resolve_prometheus,
    scrape_config,
)

MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "prometheus.yaml"


def manifest_config() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    config: dict[str, Any] = yaml.safe_load(config_map["data"]["prometheus.yml"])
    return config


def test_local_config_scrapes_each_given_job_every_2_s() -> None:
    config = scrape_config({JOB_MOCK_KUBELET: ["127.0.0.1:9108"], JOB_OPERATOR: ["localhost:8080"]})
    assert config["global"] == {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "2s"}
    assert [(j["job_name"], j["static_configs"][0]["targets"]) for j in config["scrape_configs"]] == [
        (JOB_MOCK_KUBELET, ["127.0.0.1:9108"]), (JOB_OPERATOR, ["localhost:8080"])]


def test_a_job_without_targets_is_left_out() -> None:
    assert scrape_config({JOB_OPERATOR: []})["scrape_configs"] == []


@pytest.mark.parametrize(("seconds", "text"), [(2.0, "2s"), (0.5, "500ms"), (15, "15s"), (1.25, "1250ms")])
def test_durations(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(("targets", "interval", "message"), [
    ({JOB_MOCK_KUBELET: ["127.0.0.1"]}, 2.0, "not HOST:PORT"),
    ({JOB_MOCK_KUBELET: ["http://127.0.0.1:9108"]}, 2.0, "not HOST:PORT"),
    ({"bad job": ["127.0.0.1:1"]}, 2.0, "not a valid job name"),
    ({JOB_MOCK_KUBELET: ["127.0.0.1:9108"]}, 0.0, "must be positive"),
])
def test_bad_targets_are_refused_with_a_reason(targets: dict[str, list[str]], interval: float, message: str) -> None:
    with pytest.raises(PrometheusError, match=message):
        scrape_config(targets, interval)


def test_the_manifest_scrapes_the_same_jobs_and_the_workloads_at_the_interval_the_operator_is_told() -> None:
    config = manifest_config()
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert sorted(jobs) == sorted([*JOBS, "workloads"])
    for name in JOBS:
        component = jobs[name]["relabel_configs"][0]
        assert component["action"] == "keep"
        assert component["regex"] == name  # each job keeps only its own component's pods
    operator = next(d for d in yaml.safe_load_all((MANIFEST.parent / "operator.yaml").read_text())
                    if d and d["kind"] == "Deployment")
    args = [str(a) for a in operator["spec"]["template"]["spec"]["containers"][0]["args"]]
    told = float(args[args.index("--scrape-interval") + 1])
    assert config["global"]["scrape_interval"] == duration(told)


def test_the_workloads_job_labels_series_by_namespace_and_deployment_as_the_default_preset_reads_them() -> None:
    import re

    from kubeagora.operator.metric_presets import OTEL

    relabels = next(j for j in manifest_config()["scrape_configs"] if j["job_name"] == "workloads")["relabel_configs"]
    targets = {r.get("target_label"): r for r in relabels}
    assert targets[OTEL.namespace_label]["source_labels"] == ["__meta_kubernetes_namespace"]
    deployment = targets[OTEL.workload_label]
    # Prometheus anchors relabel regexes and joins source labels with ";"
    found = re.fullmatch(deployment["regex"], "ReplicaSet;checkout-5d9c7b8f6")
    assert found is not None
    assert found.expand(deployment.get("replacement", r"\1")) == "checkout"
    assert re.fullmatch(deployment["regex"], "StatefulSet;db") is None


def test_the_manifest_serves_prometheus_where_the_operator_looks() -> None:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    (service,) = [d for d in docs if d["kind"] == "Service"]
    assert (service["metadata"]["name"], service["metadata"]["namespace"]) == ("prometheus", "kubeagora-system")
    assert service["spec"]["ports"][0]["port"] == 9090


def test_cache_dirname_from_a_debian_version() -> None:
    assert cache_dirname("2.42.0+ds-5+deb12u1\n") == "prometheus-2.42.0+ds-5+deb12u1"
    assert cache_dirname("1:2.45.0-1") == "prometheus-1_2.45.0-1"
    with pytest.raises(PrometheusError):
        cache_dirname("  ")


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_the_environment_variable_wins_then_path_then_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    cache = tmp_path / "cache"
    cached = executable(cache / "prometheus-2.42.0+ds-5+deb12u1" / "prometheus")
    on_path = executable(tmp_path / "bin" / "prometheus")
    explicit = executable(tmp_path / "elsewhere" / "prometheus")
    monkeypatch.setenv("PATH", str(on_path.parent))
    monkeypatch.setenv(PROMETHEUS_ENV, str(explicit))
    assert resolve_prometheus(cache) == explicit
    monkeypatch.delenv(PROMETHEUS_ENV)
    assert resolve_prometheus(cache) == on_path
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert resolve_prometheus(cache) == cached == cached_binary(cache)


def test_a_bad_environment_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROMETHEUS_ENV, str(tmp_path / "nothing"))
    with pytest.raises(PrometheusError, match=PROMETHEUS_ENV):
        resolve_prometheus(tmp_path)


def test_no_binary_and_no_apt_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROMETHEUS_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no prometheus, no apt-get, no dpkg-deb
    with pytest.raises(PrometheusError, match=r"^cannot obtain prometheus: it is not on PATH") as err:
        resolve_prometheus(tmp_path / "cache")
    assert "\n" not in str(err.value)


def test_a_server_refuses_a_port_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(PrometheusError, match="not a port"):
        PrometheusServer(tmp_path, {}, port=70000)


def test_a_server_that_never_started_has_no_url_and_stops_quietly(tmp_path: Path) -> None:
    server = PrometheusServer(tmp_path / "state", {JOB_MOCK_KUBELET: ["127.0.0.1:9108"]})
    assert server.url is None
    assert server.stop() is False
    assert not os.path.exists(server.state_file)


@pytest.mark.parametrize(("args", "expected"), [
    (["up", "--mock-kubelet", "nohost"], "'nohost' is not HOST:PORT"),
    (["up", "--operator", "127.0.0.1:8080/metrics"], "is not HOST:PORT"),
    (["up", "--port", "70000"], "port 70000: not a port number"),
    (["up", "--scrape-interval", "0"], "must be positive"),
    (["url"], "prometheus is not running"),
])
def test_cli_bad_input_is_one_line_and_exit_status_2(args: list[str], expected: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kubeagora.cli import app

    result = CliRunner().invoke(app, ["devcluster", "prometheus", *args, "--state-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error: ")
    assert "\n" not in message
    assert expected in message
