"""Reinforcement-learning policy: a gymnasium trading environment, PPO training, ONNX export.

:class:`TradingEnv` walks a time-ordered feature matrix ``features`` (n, f) with the mid price
``mid`` (n,) of the same rows:

- observation at row ``t``: the feature row standardised with *training* statistics
  (``(x − mean) / std``, NaN/inf → 0 after standardising, clipped to ``±obs_clip``), followed by the
  current position;
- action: discrete ``{0, 1, 2}`` = target position ``{−1, 0, +1}`` (short, flat, long, one unit);
- reward of the action taken at row ``t`` (no look-ahead: the position chosen after seeing row ``t``
  earns the return from ``t`` to ``t+1``), in basis points::

      turnover = |pos_t − pos_{t−1}|
      reward   = pos_t · (mid[t+1] / mid[t] − 1) · 1e4
                 − turnover · fees_bps                                  (taker fee per unit)
                 − turnover · (slippage_bps + impact_bps · turnover)    (half spread + k × size)

- episode: ``episode_len`` steps from a random start (``reset(seed=...)`` draws it), or the whole
  series when ``episode_len`` is None / longer than the data; the position starts flat and the last
  step is marked ``truncated`` (the open position is not closed by the environment).

:func:`train_policy` trains stable-baselines3 PPO (``MlpPolicy``, CPU, fixed seed) and returns a
:class:`TrainedPolicy` (the PPO model plus the standardisation statistics it was trained with).
:class:`PolicyMember` exposes it as an ensemble member (probabilities over ``(−1, 0, +1)`` from the
policy's action distribution at a flat position) or as a sizing policy (expected position in
``[−1, 1]``), and exports the actor to ONNX (input ``"x"`` raw features, output ``"probs"``).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from orderflow.models.config import RLConfig

log = logging.getLogger(__name__)

POSITIONS = np.array([-1.0, 0.0, 1.0])


def fit_standardizer(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std over the (training) rows, ignoring NaN; constant/empty columns get
    mean 0 or std 1."""
    x = np.asarray(features, dtype=np.float64)
    with warnings.catch_warnings():  # all-NaN columns: "Mean of empty slice"
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def standardize(features: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float = 10.0) -> np.ndarray:
    """``(x − mean) / std`` in float32 with NaN (and ±inf) → 0 afterwards, clipped to ``±clip``."""
    z = (np.asarray(features, dtype=np.float32) - mean) / std
    z = np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(z, -clip, clip).astype(np.float32)


class TradingEnv(gym.Env):
    """Trading over a feature stream with fees and slippage (see the module docstring)."""

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium convention)

    def __init__(
        self,
        features: np.ndarray,
        mid: np.ndarray,
        cfg: RLConfig | None = None,
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg or RLConfig()
        feats = np.asarray(features)
        mid = np.asarray(mid, dtype=np.float64)
        if feats.ndim != 2 or len(feats) != len(mid):
            raise ValueError(
                f"TradingEnv: features {feats.shape} and mid {mid.shape} must be (n, f) and (n,)"
            )
        if len(mid) < 2:
            raise ValueError("TradingEnv: need at least 2 rows")
        bad = np.flatnonzero(~np.isfinite(mid) | (mid <= 0))
        if len(bad):
            raise ValueError(
                f"TradingEnv: mid must be finite and > 0; first bad row {bad[0]} = {mid[bad[0]]}"
            )
        if mean is None or std is None:
            mean, std = fit_standardizer(feats)
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self._obs = standardize(feats, self.mean, self.std, self.cfg.obs_clip)
        self._ret_bps = (mid[1:] / mid[:-1] - 1.0) * 1e4  # return from row t to t+1
        n_f = feats.shape[1]
        lim = np.full(n_f + 1, self.cfg.obs_clip, dtype=np.float32)
        lim[-1] = 1.0  # position
        self.observation_space = gym.spaces.Box(-lim, lim, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(3)
        n_steps = len(mid) - 1
        self.episode_len = n_steps if self.cfg.episode_len is None else min(self.cfg.episode_len, n_steps)
        self._t = 0
        self._end = 0
        self.position = 0.0

    def _observation(self) -> np.ndarray:
        return np.append(self._obs[self._t], np.float32(self.position)).astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        """Start an episode; ``options={"start": row}`` fixes the first row."""
        super().reset(seed=seed)
        n_steps = len(self._ret_bps)
        if options and "start" in options:
            start = int(options["start"])
        else:
            start = int(self.np_random.integers(0, n_steps - self.episode_len + 1))
        if not 0 <= start <= n_steps - 1:
            raise ValueError(f"TradingEnv.reset: start row {start} outside 0..{n_steps - 1}")
        self._t, self._end = start, min(start + self.episode_len, n_steps)
        self.position = 0.0
        return self._observation(), {"row": self._t}

    def cost_bps(self, turnover: float) -> float:
        """Fees plus slippage for a position change of ``turnover`` units, in bps."""
        c = self.cfg
        return turnover * c.fees_bps + turnover * (c.slippage_bps + c.impact_bps * turnover)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            raise ValueError(f"TradingEnv.step: invalid action {action!r}; expected 0, 1 or 2")
        new_pos = float(POSITIONS[int(action)])
        turnover = abs(new_pos - self.position)
        pnl = new_pos * float(self._ret_bps[self._t])
        cost = self.cost_bps(turnover)
        reward = pnl - cost
        info = {"row": self._t, "pnl_bps": pnl, "cost_bps": cost, "turnover": turnover}
        self.position = new_pos
        self._t += 1
        truncated = self._t >= self._end
        return self._observation(), float(reward), False, truncated, info


@dataclass
class TrainedPolicy:
    """A trained PPO model with the standardisation statistics of its training rows."""

    model: Any  # stable_baselines3.PPO
    mean: np.ndarray
    std: np.ndarray
    cfg: RLConfig
    feature_names: list[str]

    def observations(self, features: np.ndarray, position: float | np.ndarray = 0.0) -> np.ndarray:
        """Observations (n, f+1) for raw feature rows at the given position(s)."""
        z = standardize(np.atleast_2d(features), self.mean, self.std, self.cfg.obs_clip)
        pos = np.broadcast_to(np.asarray(position, dtype=np.float32), (len(z),))
        return np.concatenate([z, pos[:, None]], axis=1)

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        """The policy's action distribution (n, 3) for observations, as SB3 computes it."""
        import torch

        pol = self.model.policy
        with torch.no_grad():
            t, _ = pol.obs_to_tensor(np.asarray(obs, dtype=np.float32))
            return pol.get_distribution(t).distribution.probs.cpu().numpy().astype(np.float64)

    def save(self, path: Path | str) -> None:
        """``path`` is a directory: ``policy.zip`` (SB3) and ``meta.json`` (stats, config, names)."""
        d = Path(path)
        d.mkdir(parents=True, exist_ok=True)
        self.model.save(d / "policy.zip")
        meta = {
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "cfg": self.cfg.model_dump(mode="json"),
            "feature_names": self.feature_names,
        }
        (d / "meta.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: Path | str) -> TrainedPolicy:
        """Inverse of :meth:`save`."""
        from stable_baselines3 import PPO

        d = Path(path)
        if not (d / "policy.zip").exists() or not (d / "meta.json").exists():
            raise FileNotFoundError(f"TrainedPolicy.load: {d} lacks policy.zip or meta.json")
        meta = json.loads((d / "meta.json").read_text())
        model = PPO.load(d / "policy.zip", device="cpu")
        return cls(
            model,
            np.asarray(meta["mean"], np.float32),
            np.asarray(meta["std"], np.float32),
            RLConfig(**meta["cfg"]),
            list(meta["feature_names"]),
        )


def train_policy(
    features: np.ndarray,
    mid: np.ndarray,
    cfg: RLConfig | None = None,
    feature_names: Sequence[str] | None = None,
) -> TrainedPolicy:
    """Train PPO on the rows given (all of them are training rows: standardisation statistics are
    fitted on them). Deterministic for a given seed on CPU."""
    import torch
    from stable_baselines3 import PPO

    cfg = cfg or RLConfig()
    mean, std = fit_standardizer(features)
    env = TradingEnv(features, mid, cfg, mean, std)
    torch.manual_seed(cfg.seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        learning_rate=cfg.learning_rate,
        gamma=cfg.gamma,
        ent_coef=cfg.ent_coef,
        policy_kwargs={"net_arch": list(cfg.net_arch)},
        seed=cfg.seed,
        device="cpu",
        verbose=0,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    try:
        model.learn(total_timesteps=cfg.total_timesteps)
    finally:
        torch.set_num_threads(threads)
    names = list(feature_names) if feature_names is not None else [f"f{i}" for i in range(features.shape[1])]
    log.info("rl: trained %s for %d timesteps on %d rows", cfg.algorithm, cfg.total_timesteps, len(mid))
    return TrainedPolicy(model, mean, std, cfg, names)


def evaluate_policy(
    policy: TrainedPolicy | None, features: np.ndarray, mid: np.ndarray, cfg: RLConfig, seed: int = 0
) -> float:
    """Average reward per step (bps) over one pass of the rows with the deterministic (greedy) policy,
    or a uniformly random policy when ``policy`` is None. The environment uses the policy's training
    statistics (or the rows' own when random)."""
    mean, std = (policy.mean, policy.std) if policy is not None else fit_standardizer(features)
    env = TradingEnv(features, mid, cfg.model_copy(update={"episode_len": None}), mean, std)
    obs, _ = env.reset(seed=seed, options={"start": 0})
    rng = np.random.default_rng(seed)
    total, n, done = 0.0, 0, False
    while not done:
        a = int(rng.integers(0, 3)) if policy is None else int(policy.action_probs(obs[None, :])[0].argmax())
        obs, r, term, trunc, _ = env.step(a)
        total += r
        n += 1
        done = term or trunc
    return total / n


# -- ensemble member / sizing policy --------------------------------------------------------------


class PolicyMember:
    """The PPO policy as an ensemble member (``name="ppo"``, tabular) or as a sizing policy.

    As a member, the probabilities over ``(−1, 0, +1)`` are the policy's action distribution at a
    flat position. ``fit`` needs the mid price of every dataset row (``mid``, aligned with ``ds.X``)
    and a walk-forward split: it trains on the contiguous rows spanned by the training samples and
    refuses folds whose validation samples fall inside that span.
    """

    input_kind = "tabular"
    seq_len = 1

    def __init__(
        self,
        policy: TrainedPolicy | None = None,
        cfg: RLConfig | None = None,
        mid: np.ndarray | None = None,
        feature_names: Sequence[str] | None = None,
        name: str = "ppo",
    ) -> None:
        self.name = name
        self.policy = policy
        self.cfg = cfg or (policy.cfg if policy is not None else RLConfig())
        self.mid = None if mid is None else np.asarray(mid, dtype=np.float64)
        self.feature_names = list(policy.feature_names if policy is not None else feature_names or [])

    def _policy(self) -> TrainedPolicy:
        if self.policy is None:
            raise RuntimeError(f"PolicyMember {self.name!r}: not trained or loaded")
        return self.policy

    def fit(self, ds: Any, train_idx: np.ndarray, val_idx: np.ndarray) -> None:
        """Train PPO on the rows ``sample_idx[train_idx].min() .. .max()`` of ``ds.X``."""
        if self.mid is None or len(self.mid) != len(ds.X):
            raise ValueError(f"PolicyMember.fit: mid must be given for all {len(ds.X)} dataset rows")
        rows = ds.sample_idx[np.asarray(train_idx)]
        lo, hi = int(rows.min()), int(rows.max())
        val_rows = ds.sample_idx[np.asarray(val_idx)]
        inside = val_rows[(val_rows >= lo) & (val_rows <= hi)]
        if len(inside):
            raise ValueError(
                f"PolicyMember.fit: validation row {inside[0]} lies inside training rows {lo}..{hi}"
            )
        names = self.feature_names or list(ds.feature_names)
        cols = [ds.feature_names.index(c) for c in names]
        self.policy = train_policy(ds.X[lo : hi + 1][:, cols], self.mid[lo : hi + 1], self.cfg, names)
        self.feature_names = names

    def predict_proba_raw(self, x: np.ndarray) -> np.ndarray:
        """Action probabilities (n, 3) over positions (−1, 0, +1) at a flat position."""
        pol = self._policy()
        return pol.action_probs(pol.observations(x, 0.0))

    def position_fraction(self, x: np.ndarray, position: float | np.ndarray = 0.0) -> np.ndarray:
        """Sizing: the expected target position ``p(+1) − p(−1)`` in [−1, 1] given the current one."""
        pol = self._policy()
        p = pol.action_probs(pol.observations(x, position))
        return p[:, 2] - p[:, 0]

    def save(self, path: Path | str) -> None:
        self._policy().save(path)

    @classmethod
    def load(cls, path: Path | str, name: str = "ppo") -> PolicyMember:
        return cls(TrainedPolicy.load(path), name=name)

    def export_onnx(self, path: Path | str) -> None:
        """ONNX actor: input ``"x"`` float32 (n, f) raw features → standardise → NaN/inf → 0 → clip →
        policy MLP (position input fixed at 0) → softmax → output ``"probs"`` (n, 3).
        Built node by node from the SB3 weights (opset 17, IR version 8)."""
        export_actor_onnx(self._policy(), Path(path))


def export_actor_onnx(policy: TrainedPolicy, path: Path) -> None:
    """Write the actor network of ``policy`` as ONNX (see :meth:`PolicyMember.export_onnx`)."""
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    pol = policy.model.policy
    linears: list[tuple[np.ndarray, np.ndarray, str | None]] = []
    mods = list(pol.mlp_extractor.policy_net)
    for i, m in enumerate(mods):
        if isinstance(m, torch.nn.Linear):
            act = mods[i + 1] if i + 1 < len(mods) else None
            kind = None
            if isinstance(act, torch.nn.Tanh):
                kind = "Tanh"
            elif isinstance(act, torch.nn.ReLU):
                kind = "Relu"
            elif act is not None and not isinstance(act, torch.nn.Linear):
                raise ValueError(f"export_actor_onnx: unsupported activation {type(act).__name__}")
            linears.append((m.weight.detach().numpy(), m.bias.detach().numpy(), kind))
        elif not isinstance(m, torch.nn.Tanh | torch.nn.ReLU):
            raise ValueError(f"export_actor_onnx: unsupported layer {type(m).__name__}")
    an = pol.action_net
    linears.append((an.weight.detach().numpy(), an.bias.detach().numpy(), None))
    n_f = len(policy.mean)
    w0, b0, k0 = linears[0]
    if w0.shape[1] != n_f + 1:
        raise ValueError(
            f"export_actor_onnx: first layer takes {w0.shape[1]} inputs, expected {n_f} features + 1"
        )
    linears[0] = (w0[:, :n_f], b0, k0)  # the position column multiplies 0

    inits = [
        numpy_helper.from_array(policy.mean.astype(np.float32), "mean"),
        numpy_helper.from_array(policy.std.astype(np.float32), "std"),
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        numpy_helper.from_array(np.array(-policy.cfg.obs_clip, np.float32), "lo"),
        numpy_helper.from_array(np.array(policy.cfg.obs_clip, np.float32), "hi"),
    ]
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["xc"]),
        helper.make_node("Div", ["xc", "std"], ["z_raw"]),
        helper.make_node("IsNaN", ["z_raw"], ["z_nan"]),
        helper.make_node("IsInf", ["z_raw"], ["z_inf"]),
        helper.make_node("Or", ["z_nan", "z_inf"], ["z_bad"]),
        helper.make_node("Where", ["z_bad", "zero", "z_raw"], ["z_fin"]),
        helper.make_node("Clip", ["z_fin", "lo", "hi"], ["h0"]),
    ]
    cur = "h0"
    for i, (w, b, kind) in enumerate(linears):
        inits += [
            numpy_helper.from_array(np.ascontiguousarray(w, dtype=np.float32), f"W{i}"),
            numpy_helper.from_array(b.astype(np.float32), f"B{i}"),
        ]
        nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"B{i}"], [f"g{i}"], transB=1))
        cur = f"g{i}"
        if kind is not None:
            nodes.append(helper.make_node(kind, [cur], [f"a{i}"]))
            cur = f"a{i}"
    nodes.append(helper.make_node("Softmax", [cur], ["probs"], axis=1))
    graph = helper.make_graph(
        nodes,
        "ppo_actor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", n_f])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", 3])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="orderflow")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
