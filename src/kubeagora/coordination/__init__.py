"""Coordination between agents: the pub-sub bus, Contract-Net negotiation, market clearing."""
