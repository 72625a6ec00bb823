"""Controllers: the Controller protocol, default placement and the baseline autoscalers."""

from kubeagora.controllers.base import Controller, StaticController

__all__ = ["Controller", "StaticController"]
