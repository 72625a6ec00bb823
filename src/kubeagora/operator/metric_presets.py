"""Where the operator reads a workload's load and latency: the standard series, one preset each (pure).

A preset names the request counter and the latency histogram a telemetry stack exports, the labels
that say which namespace and which workload (the intent's target Deployment) a series is about, and
the matchers that tell failed requests from served ones:

    otel           OpenTelemetry HTTP semantic conventions (``http.server.request.duration``, seconds),
                   as the Prometheus exporter names them: ``http_server_request_duration_seconds_bucket``
                   and ``_count``, labels ``http_response_status_code``; the namespace and workload come
                   from the ``k8s.namespace.name`` and ``k8s.deployment.name`` resource attributes
                   (``k8s_namespace_name``, ``k8s_deployment_name``) once the collector's k8sattributes
                   processor adds them and the exporter turns resource attributes into labels
                   (``resource_to_telemetry_conversion``, or Prometheus's ``promote_resource_attributes``)
    istio          Istio's standard metrics, reported by the destination's sidecar:
                   ``istio_requests_total`` and ``istio_request_duration_milliseconds_bucket``
    linkerd        Linkerd's inbound proxy metrics: ``response_total`` and ``response_latency_ms_bucket``
                   (namespace and deployment labels, as ``linkerd viz stat`` groups them)
    ingress-nginx  the ingress controller's view: ``nginx_ingress_controller_requests`` and
                   ``nginx_ingress_controller_request_duration_seconds_bucket``; its ``service`` label is
                   the backend Service, so this preset needs the Service named like the Deployment
                   (or ``workload_label`` set to a label that carries the Deployment's name)

Failed requests (5xx, Linkerd's ``classification="failure"``) count as dropped; latency percentiles
are over the requests that did not fail, as latency SLOs usually are. An intent's ``spec.metrics``
picks a preset or replaces any of its queries with custom PromQL (``custom_queries``); the
operator's ``--metrics-preset`` (and the Helm chart's values) pick the default and may rename the
two identifying labels, for a Prometheus whose relabelling calls them differently.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Preset:
    name: str
    about: str
    requests: str
    """Counter of requests that reached the workload, whatever their outcome."""
    latency_buckets: str
    """The ``_bucket`` series of the latency histogram."""
    latency_unit_s: float
    """Seconds per unit of the histogram's ``le`` (1 for seconds, 0.001 for milliseconds)."""
    namespace_label: str
    workload_label: str
    """Label whose value is the target Deployment's name."""
    matchers: str = ""
    """Label matchers every query of this preset applies (e.g. which proxy reports)."""
    failed: str = ""
    """Matchers that select failed requests on ``requests``."""
    succeeded: str = ""
    """Matchers that select the requests whose latency counts, on ``latency_buckets``."""

    def with_labels(self, namespace_label: str | None = None, workload_label: str | None = None) -> Preset:
        """This preset reading the namespace and workload from differently named labels."""
        return replace(self, namespace_label=namespace_label or self.namespace_label,
                       workload_label=workload_label or self.workload_label)


OTEL = Preset(
    "otel", "OpenTelemetry HTTP server semantic conventions (http.server.request.duration)",
    requests="http_server_request_duration_seconds_count",
    latency_buckets="http_server_request_duration_seconds_bucket", latency_unit_s=1.0,
    namespace_label="k8s_namespace_name", workload_label="k8s_deployment_name",
    failed='http_response_status_code=~"5.."', succeeded='http_response_status_code!~"5.."')
ISTIO = Preset(
    "istio", "Istio standard metrics, reported by the destination workload's sidecar",
    requests="istio_requests_total", latency_buckets="istio_request_duration_milliseconds_bucket",
    latency_unit_s=0.001, namespace_label="destination_workload_namespace", workload_label="destination_workload",
    matchers='reporter="destination"', failed='response_code=~"5.."', succeeded='response_code!~"5.."')
LINKERD = Preset(
    "linkerd", "Linkerd proxy metrics, inbound side",
    requests="response_total", latency_buckets="response_latency_ms_bucket", latency_unit_s=0.001,
    namespace_label="namespace", workload_label="deployment", matchers='direction="inbound"',
    failed='classification="failure"', succeeded='status_code!~"5.."')
INGRESS_NGINX = Preset(
    "ingress-nginx", "ingress-nginx controller metrics, by backend Service",
    requests="nginx_ingress_controller_requests",
    latency_buckets="nginx_ingress_controller_request_duration_seconds_bucket", latency_unit_s=1.0,
    namespace_label="namespace", workload_label="service", failed='status=~"5.."', succeeded='status!~"5.."')

PRESETS: dict[str, Preset] = {p.name: p for p in (OTEL, ISTIO, LINKERD, INGRESS_NGINX)}
"""By name, as ``spec.metrics.preset``, ``--metrics-preset`` and the Helm values spell them."""
DEFAULT_PRESET = OTEL.name

CUSTOM_QUERIES = {
    "requestsPerSecond": "requests per second reaching the workload",
    "errorsPerSecond": "failed requests per second (counted as dropped)",
    "p95Seconds": "95th percentile of request latency, in seconds",
    "p99Seconds": "99th percentile of request latency, in seconds",
}
"""The signals an intent's ``spec.metrics.queries`` may give as custom PromQL, each returning one
sample (as KEDA's Prometheus scaler takes one query); a signal not given comes from the preset."""


def preset(name: str) -> Preset:
    """The preset called ``name``; ValueError naming the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown metrics preset {name!r} (known: {', '.join(PRESETS)})") from None
