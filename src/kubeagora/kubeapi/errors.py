"""The error a kubeconfig or service account that cannot be used raises (one line, for the CLIs)."""


class KubeConfigError(ValueError):
    """A kubeconfig (or in-cluster service account) that cannot be read or used."""
