"""The decision layer: forecasting, MPC, the shield, risk, twin rollouts and progressive delivery."""
