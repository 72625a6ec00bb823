"""Controllers: the Controller protocol (`base`), default placement and the baseline autoscalers.

Nothing is imported here: `kubeagora.controllers.registry` lists the controllers' names without
importing them (the CLI's startup must not pay for cvxpy); import each from its own module.
"""
