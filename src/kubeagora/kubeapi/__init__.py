"""A small asyncio client of the Kubernetes REST API, shared by the mock kubelet, the operator's
adapter and the scheduler extender (aiohttp; JSON by orjson; needs the ``cluster`` extra).

    kubeconfig  a kubeconfig (or the in-cluster service account) → URL, TLS context, token
    client      create, merge-patch, delete, paginated list and watch
    quantity    resource quantities ("500m", "2Gi") as numbers
    selectors   label selectors (matchLabels, matchExpressions) as a pure predicate
    node_reports  how far to believe what a Node says about itself (speed, carbon; never trust)
    stored_numbers  JSON as the API server stores it (whole floats as ints), for what is signed
"""

from kubeagora.kubeapi.errors import KubeConfigError

__all__ = ["KubeConfigError"]
