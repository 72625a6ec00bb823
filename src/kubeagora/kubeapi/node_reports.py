"""How far kubeagora believes what a Node says about itself (pure).

A node's kubelet credentials may write its own Node object — its annotations, most of its labels,
its status (the NodeRestriction admission plugin keeps a node off *other* nodes, not off its own). So
a figure a node reports about itself is believed only where believing it cannot raise the node's own
standing against the others:

- ``kubeagora.io/speed-factor``, its speed against its class's reference machine: clamped to
  ``[MIN_SPEED_FACTOR, MAX_REPORTED_SPEED_FACTOR]`` = [0.05, 1.0]. A node may say it is slower (an
  old or power-capped machine, which only makes its own bids dearer), never that it is faster than
  the reference; an unreadable value reads as 1.
- ``kubeagora.io/carbon-g-per-kwh``, its grid's carbon intensity: believed only where it is above
  the figure kubeagora holds for the node's region (a node may say its power is dirtier, not cleaner).
- ``kubeagora.io/trust`` is the operator's verdict, not the node's claim: the operator publishes it
  (``operator.enact.trust_requests``, from attestation and cross-checks) and the admission policy
  ``kubeagora-node-trust-operator-only`` refuses a change of it by anyone else, the node included. Read
  as a number in [0, 1]; absent or unreadable, 1 (no verdict against the node). Where that policy is not
  installed a node could reset its own verdict to 1 (never above an honest node's).

What stays node-reported and open (docs/security.md): allocatable capacity and readiness (the
scheduler itself believes them) and the region and zone labels, which a kubelet may set on its own
node; residency rests on them as it does for any nodeSelector.
"""

from __future__ import annotations

import math

ANNOTATION_SPEED = "kubeagora.io/speed-factor"
MIN_SPEED_FACTOR = 0.05
MAX_REPORTED_SPEED_FACTOR = 1.0
"""A node is never believed faster than its class's reference machine on its own word."""


ANNOTATION_TRUST = "kubeagora.io/trust"


def published_trust(value: object) -> float | None:
    """The operator's published trust in a node from its annotation's value; None where absent, unreadable
    or outside [0, 1]."""
    try:
        trust = float(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return trust if trust is not None and 0.0 <= trust <= 1.0 else None


def believed_speed_factor(reported: object) -> float:
    """The speed factor a node's own annotation is believed to say, within the bounds above."""
    try:
        value = float(str(reported)) if reported is not None else 1.0
    except ValueError:
        return 1.0
    if math.isnan(value):
        return 1.0
    return min(max(value, MIN_SPEED_FACTOR), MAX_REPORTED_SPEED_FACTOR)


def believed_carbon_g_per_kwh(reported: float | None, region_g_per_kwh: float) -> float:
    """A node's own carbon-intensity claim (None: it makes none), believed only above its region's figure."""
    return region_g_per_kwh if reported is None else max(reported, region_g_per_kwh)
