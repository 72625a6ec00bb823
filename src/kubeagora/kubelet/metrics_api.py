"""The mock kubelet as the cluster's resource metrics API: an aggregated API server for
``metrics.k8s.io/v1beta1``, in place of metrics-server, so the real HPA can run on mock nodes.

How the real HPA is fed on the devcluster:

    kube-controller-manager (HPA, every 15 s)
      → GET /apis/metrics.k8s.io/v1beta1/namespaces/NS/pods?labelSelector=...   (kube-apiserver)
      → APIService v1beta1.metrics.k8s.io → Service kube-system/kubeagora-metrics
      → its EndpointSlice: this host's address and ``--metrics-api-port``    (aggregator routing)
      → this HTTPS listener → PodMetrics from the traffic model's CPU counters (``resource_metrics``)

The API server is started with ``--enable-aggregator-routing=true`` (no kube-proxy makes a cluster
IP reachable), so it dials the endpoint itself. An Endpoints/EndpointSlice address may not be a
loopback one, so the listener binds to a non-loopback address of this machine (``host_address``:
the source address of the default route) and the slice names it.

With ``--register-metrics-api`` (the default when the API is on) the mock kubelet creates or
updates the Service, the EndpointSlice and the APIService (``insecureSkipTLSVerify: true``: the
serving certificate is a self-signed one made with ``openssl`` at start), and deletes them on exit
if they still point at it.

This is a test double. Requests come through the aggregator with its front-proxy client
certificate and ``X-Remote-User`` headers; a real aggregated API server verifies that certificate
against the request-header CA and authorizes the user. This one asks for no client certificate and
answers every request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from kubeagora.kubeapi.client import Api, ApiError
from kubeagora.kubelet import resource_metrics as rm
from kubeagora.kubelet.errors import KubeletError
from kubeagora.kubelet.selectors import parse_selector

SERVICE_NAMESPACE = "kube-system"
SERVICE_NAME = "kubeagora-metrics"
SERVICE_PORT = 443
PORT_NAME = "https"
APISERVICE_NAME = f"{rm.VERSION}.{rm.GROUP}"
MANAGED_BY = "kubeagora-mock-kubelet"
PROBE_ADDRESS = ("8.8.8.8", 53)
"""Any routable address: a UDP socket "connected" to it (no packet is sent) shows the source
address of the default route."""


# --- the address and the certificate --------------------------------------------------------------


def usable_endpoint_address(text: str) -> str:
    """``text`` if it may be an Endpoints/EndpointSlice address, else ValueError saying why."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast:
        raise ValueError(f"{text}: the API server rejects loopback, link-local, multicast and unspecified "
                         "addresses as endpoints; give one of this machine's other addresses")
    return str(ip)


def host_address() -> str:
    """A non-loopback address of this machine the API server can dial: the default route's
    source address (IPv4, else IPv6), else one the host name resolves to."""
    for family, probe in ((socket.AF_INET, PROBE_ADDRESS), (socket.AF_INET6, ("2001:4860:4860::8888", 53))):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect(probe)
                return usable_endpoint_address(str(s.getsockname()[0]))
        except (OSError, ValueError):
            continue
    try:
        _, _, addrs = socket.gethostbyname_ex(socket.gethostname())
    except OSError:
        addrs = []
    for a in addrs:
        try:
            return usable_endpoint_address(a)
        except ValueError:
            continue
    raise KubeletError("--metrics-api-address: found no non-loopback address of this machine; give one")


def serving_context(address: str) -> ssl.SSLContext:
    """A TLS server context with a fresh self-signed certificate (P-256, one year) for
    ``address`` and the Service's DNS names; asks for no client certificate."""
    exe = shutil.which("openssl")
    if exe is None:
        raise KubeletError("--metrics-api-port needs the 'openssl' command to make its serving certificate")
    dns = [SERVICE_NAME, f"{SERVICE_NAME}.{SERVICE_NAMESPACE}", f"{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc",
           "localhost"]
    sans = ",".join([f"DNS:{d}" for d in dns] + [f"IP:{address}", "IP:127.0.0.1"])
    with tempfile.TemporaryDirectory() as tmp:
        key, cert = Path(tmp) / "tls.key", Path(tmp) / "tls.crt"
        proc = subprocess.run(
            [exe, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-sha256",
             "-days", "365", "-keyout", str(key), "-out", str(cert),
             "-subj", f"/CN={SERVICE_NAME}.{SERVICE_NAMESPACE}.svc", "-addext", f"subjectAltName={sans}"],
            capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise KubeletError(f"openssl could not make the metrics API's serving certificate: {proc.stderr.strip()}")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
    ctx.verify_mode = ssl.CERT_NONE  # a test double: see the module docstring
    return ctx


# --- registration ---------------------------------------------------------------------------------


def service_manifest(port: int) -> dict[str, Any]:
    """A selectorless ClusterIP Service; its EndpointSlice is written by hand (``endpoint_slice_manifest``)."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE,
                         "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
            "spec": {"type": "ClusterIP",
                     "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": port, "protocol": "TCP"}]}}


def endpoint_slice_manifest(address: str, port: int) -> dict[str, Any]:
    """The Service's one endpoint: this process (the aggregator resolves APIServices through slices)."""
    family = "IPv6" if ":" in address else "IPv4"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE,
                         "labels": {"kubernetes.io/service-name": SERVICE_NAME,
                                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
            "addressType": family,
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}


def api_service_manifest() -> dict[str, Any]:
    return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": APISERVICE_NAME, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
            "spec": {"group": rm.GROUP, "version": rm.VERSION, "groupPriorityMinimum": 100, "versionPriority": 100,
                     "insecureSkipTLSVerify": True,
                     "service": {"namespace": SERVICE_NAMESPACE, "name": SERVICE_NAME, "port": SERVICE_PORT}}}


SERVICES = f"/api/v1/namespaces/{SERVICE_NAMESPACE}/services"
SLICES = f"/apis/discovery.k8s.io/v1/namespaces/{SERVICE_NAMESPACE}/endpointslices"
APISERVICES = "/apis/apiregistration.k8s.io/v1/apiservices"


def points_at(slice_obj: Any, address: str, port: int) -> bool:
    """Whether an EndpointSlice (as read back) names exactly this address and port."""
    if not isinstance(slice_obj, dict):
        return False
    addresses = [a for e in slice_obj.get("endpoints") or () for a in e.get("addresses") or ()]
    ports = [p.get("port") for p in slice_obj.get("ports") or ()]
    return addresses == [address] and ports == [port]


async def register(api: Api, address: str, port: int) -> None:
    """Create or update the Service, EndpointSlice and APIService (idempotent)."""
    service = service_manifest(port)
    status, _ = await api.create(SERVICES, service, ok=(409,))
    if status == 409:
        await api.merge_patch(f"{SERVICES}/{SERVICE_NAME}", {"spec": {"ports": service["spec"]["ports"]}})
    slice_body = endpoint_slice_manifest(address, port)
    status, _ = await api.create(SLICES, slice_body, ok=(409,))
    if status == 409:  # the address type may differ and is immutable: replace the slice
        await api.delete(f"{SLICES}/{SERVICE_NAME}")
        await api.create(SLICES, slice_body)
    apiservice = api_service_manifest()
    status, _ = await api.create(APISERVICES, apiservice, ok=(409,))
    if status == 409:
        await api.merge_patch(f"{APISERVICES}/{APISERVICE_NAME}", {"spec": apiservice["spec"]})


async def unregister(api: Api, address: str, port: int) -> bool:
    """Delete the three objects if the slice still points at us (another instance may have taken
    over since); True when deleted."""
    try:
        current = await api.get(f"{SLICES}/{SERVICE_NAME}")
    except ApiError:
        return False
    if not points_at(current, address, port):
        return False
    await api.delete(f"{APISERVICES}/{APISERVICE_NAME}")
    await api.delete(f"{SLICES}/{SERVICE_NAME}")
    await api.delete(f"{SERVICES}/{SERVICE_NAME}")
    return True


def available(apiservice: Any) -> tuple[bool, str]:
    """The APIService's Available condition: (True?, its reason and message)."""
    for c in ((apiservice or {}).get("status") or {}).get("conditions") or ():
        if c.get("type") == "Available":
            return c.get("status") == "True", f"{c.get('reason', '')}: {c.get('message', '')}".strip(": ")
    return False, "no Available condition yet"


async def wait_available(api: Api, timeout_s: float = 60.0, every_s: float = 1.0) -> tuple[bool, str]:
    """Poll the APIService until it is Available or ``timeout_s`` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    state = (False, "not read yet")
    while True:
        try:
            state = available(await api.get(f"{APISERVICES}/{APISERVICE_NAME}"))
        except ApiError as e:
            state = (False, str(e))
        if state[0] or loop.time() > deadline:
            return state
        await asyncio.sleep(every_s)


# --- the HTTPS app --------------------------------------------------------------------------------

PREFIX = f"/apis/{rm.GROUP}/{rm.VERSION}"


def web_app(pods: Callable[[], Sequence[rm.PodSnapshot]], nodes: Callable[[], Sequence[rm.NodeSnapshot]]
            ) -> web.Application:
    """The aggregated API's routes over snapshot providers (the mock kubelet's current state)."""

    def reply(body: dict[str, Any], status: int = 200) -> web.Response:
        return web.json_response(body, status=status)

    def bad_request(message: str) -> web.Response:
        return reply(rm.status_error(400, "BadRequest", message), 400)

    async def group_list(_: web.Request) -> web.Response:
        return reply(rm.api_group_list())

    async def group(_: web.Request) -> web.Response:
        return reply(rm.api_group())

    async def resources(_: web.Request) -> web.Response:
        return reply(rm.discovery())

    async def pod_list(request: web.Request) -> web.Response:
        if "fieldSelector" in request.query and request.query["fieldSelector"].strip():
            return bad_request("fieldSelector is not supported by this metrics API; use labelSelector")
        try:
            selector = parse_selector(request.query.get("labelSelector"))
        except ValueError as e:
            return bad_request(str(e))
        return reply(rm.list_pod_metrics(pods(), request.match_info.get("namespace"), selector))

    async def pod_get(request: web.Request) -> web.Response:
        ns, name = request.match_info["namespace"], request.match_info["name"]
        for p in pods():
            if p.namespace == ns and p.name == name:
                return reply(p.metrics())
        return reply(rm.not_found("pods", name), 404)

    async def node_list(request: web.Request) -> web.Response:
        try:
            selector = parse_selector(request.query.get("labelSelector"))
        except ValueError as e:
            return bad_request(str(e))
        return reply(rm.list_node_metrics(nodes(), selector))

    async def node_get(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        for n in nodes():
            if n.name == name:
                return reply(n.metrics())
        return reply(rm.not_found("nodes", name), 404)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.add_routes([
        web.get("/apis", group_list), web.get(f"/apis/{rm.GROUP}", group), web.get(PREFIX, resources),
        web.get(f"{PREFIX}/pods", pod_list), web.get(f"{PREFIX}/namespaces/{{namespace}}/pods", pod_list),
        web.get(f"{PREFIX}/namespaces/{{namespace}}/pods/{{name}}", pod_get),
        web.get(f"{PREFIX}/nodes", node_list), web.get(f"{PREFIX}/nodes/{{name}}", node_get),
        web.get("/healthz", healthz), web.get("/readyz", healthz), web.get("/livez", healthz),
    ])
    return app
