"""Learning: a bounded residual on the MPC's set-points, trained with CTDE (MAPPO) over the engine.

- `features`: what each scaling agent sees of a drafted MPC step, and the residual its action means
  (numpy only: the same code runs in training, in the bench and in the operator);
- `policy`: the trained actor as numpy arrays (`LearnedResidual`, no torch at inference);
- `env`: a PettingZoo ParallelEnv over the engine and the mas controller, one agent per service;
- `mappo`: behavioural cloning of the clairvoyant planner, DAgger, then MAPPO with a centralised
  critic (torch, the `learn` extra); `kubeagora train` runs it.

Only `mappo` imports torch, and only `env` imports PettingZoo: the core install and the operator use
`features` and `policy`.
"""
