"""The mock kubelet: plays the nodes of a simulated topology against a real Kubernetes API server.

One asyncio process registers a Node per topology node, renews their Leases, runs the pods the
real scheduler binds to them (Running, then Ready after the node class's cold start), replays a
scenario's fault schedule, and serves traffic through the simulator's latency model, exporting
per-service request and latency histograms and per-node utilisation and power on ``/metrics``.

It talks to the API server through ``kubeagora.kubeapi``. One idea per module; all but ``main``
are pure and unit-tested:

    nodes       topology → Node manifests (labels, capacity, conditions); ``--nodes N`` topologies
    leases      Lease manifests and the staggered renewal schedule (every leaseDuration/4)
    pods        pod status construction, pod IPs, which service a pod serves, cold starts
    faults      a fault schedule → per-node heartbeat / serving / speed at a time; pod crashes
    traffic     Poisson load over Ready pods through ``sim.latency`` (numpy per tick)
    metrics     the Prometheus collector over the traffic model's counters
    main        the asyncio main loop wiring it all, and the HTTP server for /metrics and /faults
"""

from kubeagora.sim.kubelet.errors import KubeletError

__all__ = ["KubeletError"]
