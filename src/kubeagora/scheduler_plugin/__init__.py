"""The kube-scheduler extender: residency, tier, node-class and accelerator rules as a filter, the
placement agent's Contract-Net bids as node scores (``kubeagora scheduler-extender``).

    protocol    the extender wire format (k8s.io/kube-scheduler/extender/v1), parsed and built
    cache       the watch cache: Nodes, bound Pods, Deployments, OrchestrationIntents (pure updates)
    placement   which intents a pod belongs to, and what placement they allow
    filtering   the filter verb: which nodes may host a pod, and why the others may not
    bids        the watch cache as a Contract-Net ledger, a pod as the task to bid on
    scoring     the prioritize verb: bids mapped to the extender's score range
    metrics     Prometheus request latency and outcomes
    server      the aiohttp app: /filter, /prioritize, /healthz, /metrics
    watch       the list+watch loops that keep the cache current
    run         the process: server and watch loops on one event loop
    cli         ``kubeagora scheduler-extender``
"""
