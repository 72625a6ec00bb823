"""The operator's admission webhooks alone, as a kopf subprocess (tests/security starts it).

    KUBECONFIG=... KUBEAGORA_WEBHOOK_PORT=9443 KUBEAGORA_WEBHOOK_CERT=cert.pem KUBEAGORA_WEBHOOK_KEY=key.pem \
    python -m kopf run --standalone --all-namespaces tests/security/approvals_webhook.py

The configurations are static (the test writes them); answers on AgentActions are authorized with
SubjectAccessReviews through the kubeconfig's credentials, as the operator does with its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kopf

from kubeagora.kubeapi import kubeconfig
from kubeagora.kubeapi.client import Api
from kubeagora.operator.admission import configure_admission, subject_access_reviewer


@kopf.on.startup()
async def serve_admission(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    memo["api"] = api = Api(await kubeconfig.load(None))
    configure_admission(settings, host="127.0.0.1", port=int(os.environ["KUBEAGORA_WEBHOOK_PORT"]),
                        managed_name=None, certfile=Path(os.environ["KUBEAGORA_WEBHOOK_CERT"]),
                        pkeyfile=Path(os.environ["KUBEAGORA_WEBHOOK_KEY"]),
                        policy_name=os.environ.get("KUBEAGORA_POLICY", "default"),
                        authorizer=subject_access_reviewer(api))


@kopf.on.cleanup()
async def close(memo: Any, **_: Any) -> None:
    await memo["api"].close()
