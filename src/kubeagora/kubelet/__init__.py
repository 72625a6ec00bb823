"""The mock kubelet: plays the nodes of a simulated topology against a real Kubernetes API server.

One asyncio process registers a Node per topology node, renews their Leases, runs the pods the
real scheduler binds to them (Running, then Ready after the node class's cold start), replays a
scenario's fault schedule, and serves traffic through the simulator's latency model, exporting
per-service request and latency histograms and per-node utilisation and power on ``/metrics``.
With ``--metrics-api-port`` it also serves the resource metrics API (``metrics.k8s.io/v1beta1``)
as an aggregated API and registers it, so the devcluster's real HPA (in kube-controller-manager)
reads the mock pods' CPU usage from the traffic model and scales Deployments; ``POST /load``
changes a service's load to drive a burst.

It talks to the API server through ``kubeagora.kubeapi``. One idea per module; all but ``main``
and ``metrics_api`` (the adapters) are pure and unit-tested:

    nodes       topology → Node manifests (labels, capacity, conditions); ``--nodes N`` topologies
    leases      Lease manifests and the staggered renewal schedule (every leaseDuration/4)
    pods        pod status construction, pod IPs, which service a pod serves, cold starts
    faults      a fault schedule → per-node heartbeat / serving / speed at a time; pod crashes
    traffic     Poisson load over Ready pods through ``sim.latency`` (numpy per tick)
    metrics     the Prometheus collector over the traffic model's counters
    load        ``/load`` bodies: set a service's rate or a factor of its base rate
    selectors   label selectors (``?labelSelector=``): parse and match
    resource_metrics  PodMetrics / NodeMetrics from the pods' CPU counters (rates over 15 s)
    metrics_api the metrics.k8s.io HTTPS app, its serving cert and its APIService registration
    takeover    a starting kubelet and the Nodes already there: adopt, recreate or remove its own
    runtime     one record per running mock kubelet (devcluster status, --stop, --detach read them)
    detach      --detach: start in the background, but return only once serving (or print why not)
    main        the asyncio main loop wiring it all, and the HTTP server for /metrics, /faults, /load
"""

from kubeagora.kubelet.errors import KubeletError

__all__ = ["KubeletError"]
