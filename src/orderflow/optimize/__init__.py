"""Parameter search over out-of-sample walk-forward results (issue 16; docs/optimize.md).

``space`` (the YAML search space, checked against the config models), ``objective`` (one trial: the
backtest of each walk-forward test window over cached probabilities), ``cache`` (those probabilities on
disk), ``study`` (the held-back split, Optuna studies, the judgement, the export), ``stats`` (PBO by
CSCV, the deflated Sharpe ratio) and ``report`` (HTML, JSON and plots).
"""
