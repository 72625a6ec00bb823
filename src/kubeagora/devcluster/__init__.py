"""Start and stop a real local Kubernetes control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler) built from source; no Docker, no kubelet.

    from kubeagora.devcluster import DevCluster, Settings
    cluster = DevCluster(Path("/tmp/dc"), settings=Settings(node_monitor_grace_period="20s"))
    cluster.up()            # returns once every component is healthy
    cluster.kubeconfig      # admin kubeconfig (O=system:masters)
    cluster.down()
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubeagora.devcluster.binary import BINARY_ENV, resolve_binary
    from kubeagora.devcluster.cluster import (
        COMPONENTS,
        DEFAULT_STATE_DIR,
        ComponentStatus,
        DevCluster,
        Layout,
        Ports,
        Settings,
        down,
        kubeconfig_path,
        status,
        up,
    )
    from kubeagora.devcluster.errors import DevClusterError, GoMissingError

# Imported on first use (PEP 562): `kubeagora --help` reads only `devcluster.defaults`, and the modules
# below start processes, speak TLS and HTTP, and parse YAML.
_HOMES = {"BINARY_ENV": "binary", "resolve_binary": "binary", "DevClusterError": "errors",
          "GoMissingError": "errors"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOMES.get(name, 'cluster')}"), name)


__all__ = [
    "BINARY_ENV",
    "COMPONENTS",
    "DEFAULT_STATE_DIR",
    "ComponentStatus",
    "DevCluster",
    "DevClusterError",
    "GoMissingError",
    "Layout",
    "Ports",
    "Settings",
    "down",
    "kubeconfig_path",
    "resolve_binary",
    "status",
    "up",
]
