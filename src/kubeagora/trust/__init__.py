"""Zero trust, built: what kubeagora believes only once it has checked it.

    intent_signing  ed25519 signatures over an intent's canonical spec (sign, verify, the policy's rule)
    attestation     signed node attestation claims (make, encode, verify: forged, replayed, expired, failed)
    node_trust      the operator's trust in each node as published on the Node (annotation and label)

Each module is pure apart from the ``cryptography`` package (the 'operator' and 'cluster' extras);
the enforcement points that use them are the webhook, the operator's loop, the sentinel and the
scheduler extender.
"""
