"""The kubeagora operator: the same agents and decision layer as the simulator, reached through a
Kubernetes adapter (kopf hosts it; handlers stay thin).

    view        the watch cache: every Node, Pod, Deployment, intent, policy and AgentAction the watches saw
    adapter     cluster objects + Prometheus signals → an ``Observation`` (pure)
    enact       an ``Action`` → the API requests that carry it out (scale subresource, eviction, taint)
    records     a decision's rollout ↔ its AgentAction object; what a restart must finish (pure)
    intent_status  the intent's status: observed figures, conditions, the last decisions (pure)
    telemetry   the operator's own Prometheus metrics, /metrics and /healthz
    loop        the control loop: observe, decide, record, enact, report, every tick
    handlers    kopf: login, settings, watch events into the view, the loop's start and stop
    admission   kopf: the validating webhook for intents and orchestration policies
    metrics_source  the PromQL reader (per-service load and latency, per-node power)
    cli         ``kubeagora operator run``
"""
