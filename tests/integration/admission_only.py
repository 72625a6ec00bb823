"""A kopf operator that runs only the admission webhook (the integration tests start it as a subprocess).

    KUBECONFIG=... KUBEAGORA_WEBHOOK_PORT=9443 KUBEAGORA_WEBHOOK_CONFIGURATION=test.kubeagora.io \
    KUBEAGORA_POLICY=default python -m kopf run --standalone --all-namespaces tests/integration/admission_only.py
"""

from __future__ import annotations

import os
from typing import Any

import kopf

from kubeagora.operator.admission import configure_admission


@kopf.on.startup()
def serve_admission(settings: kopf.OperatorSettings, **_: Any) -> None:
    configure_admission(settings, host="127.0.0.1", port=int(os.environ["KUBEAGORA_WEBHOOK_PORT"]),
                        managed_name=os.environ["KUBEAGORA_WEBHOOK_CONFIGURATION"],
                        policy_name=os.environ.get("KUBEAGORA_POLICY", "default"))
