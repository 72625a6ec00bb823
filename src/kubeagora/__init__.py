"""kubeagora: multi-agent orchestration for Kubernetes, and the simulator that measures it."""

__version__ = "0.1.0"
