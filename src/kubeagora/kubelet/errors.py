"""The one error the mock kubelet raises for bad input (the CLI prints it on one line, exit 2)."""


class KubeletError(ValueError):
    """Bad input or an unusable cluster: a kubeconfig, scenario, traffic file or API server problem."""
