"""RL policy: environment API and reward arithmetic, quick PPO training, save/load, ONNX parity."""

from __future__ import annotations

import time

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from orderflow.models.config import RLConfig
from orderflow.models.rl import (
    PolicyMember,
    TradingEnv,
    TrainedPolicy,
    evaluate_policy,
    train_policy,
)

SHORT, FLAT, LONG = 0, 1, 2


def _synthetic(n: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A persistent signal s (AR(1), φ=0.97) drives the next return: r[t→t+1] = 4·s_t + N(0, 4²) bps.
    Features: a noisy view of s, pure noise, and noise with 5 % NaN."""
    rng = np.random.default_rng(seed)
    s = np.zeros(n)
    for t in range(1, n):
        s[t] = 0.97 * s[t - 1] + rng.normal() * np.sqrt(1 - 0.97**2)
    ret_bps = 4.0 * s + rng.normal(size=n) * 4.0
    mid = 100.0 * np.exp(np.cumsum(np.r_[0.0, ret_bps[:-1]]) * 1e-4)
    noisy = np.where(rng.random(n) < 0.05, np.nan, rng.normal(size=n))
    feats = np.c_[s + 0.3 * rng.normal(size=n), rng.normal(size=n), noisy].astype(np.float32)
    return feats, mid


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return _synthetic()


@pytest.fixture(scope="module")
def trained(data) -> tuple[TrainedPolicy, float]:
    import stable_baselines3  # noqa: F401  (time the training, not the import)

    f, m = data
    t0 = time.perf_counter()
    pol = train_policy(f[:4000], m[:4000], RLConfig.quick(seed=0), ["signal", "noise", "noisy_nan"])
    return pol, time.perf_counter() - t0


def test_env_api(data) -> None:
    f, m = data
    env = TradingEnv(f[:300], m[:300], RLConfig(episode_len=100))
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (4,) and obs.dtype == np.float32 and obs[-1] == 0.0
    assert np.all(np.isfinite(obs))  # NaN features become 0
    n = 0
    trunc = False
    while not trunc:
        obs, _, term, trunc, _ = env.step(LONG)
        assert not term and obs[-1] == 1.0
        n += 1
    assert n == 100


def test_reward_arithmetic_on_hand_made_path() -> None:
    mid = np.array([100.0, 101.0, 100.0, 100.0, 102.0])
    feats = np.zeros((5, 1), np.float32)
    cfg = RLConfig(episode_len=None, fees_bps=5.0, slippage_bps=1.0, impact_bps=0.5)
    env = TradingEnv(feats, mid, cfg)
    env.reset(options={"start": 0})
    # t=0 long: +100 bps move; turnover 1: fee 5 + slippage 1 + impact 0.5·1 = 6.5
    _, r, *_ = env.step(LONG)
    assert r == pytest.approx(100.0 - 6.5)
    # t=1 short from long: 101→100 is −99.01 bps, earned short; turnover 2: 2·5 + 2·(1 + 0.5·2)
    _, r, _, _, info = env.step(SHORT)
    assert info["turnover"] == 2.0
    assert r == pytest.approx((1 - 100 / 101) * 1e4 - (10.0 + 4.0))
    # t=2 hold short over a flat move: no cost, no pnl
    _, r, *_ = env.step(SHORT)
    assert r == pytest.approx(0.0)
    # t=3 flat before a +200 bps move: only the exit cost is charged; the move is not earned
    _, r, term, trunc, _ = env.step(FLAT)
    assert r == pytest.approx(-6.5) and trunc and not term


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="row 2"):
        TradingEnv(np.zeros((4, 1)), np.array([1.0, 1.0, np.nan, 1.0]))
    env = TradingEnv(np.zeros((4, 1)), np.ones(4))
    env.reset()
    with pytest.raises(ValueError, match="invalid action 5"):
        env.step(5)


@pytest.mark.slow
def test_quick_training_beats_random_out_of_sample(data, trained) -> None:
    f, m = data
    pol, seconds = trained
    cfg = pol.cfg
    oos = evaluate_policy(pol, f[4000:], m[4000:], cfg)
    rnd = evaluate_policy(None, f[4000:], m[4000:], cfg, seed=1)
    print(f"\nPPO quick: train {seconds:.1f} s, OOS mean reward {oos:.3f} bps/step vs random {rnd:.3f}")
    assert seconds < 20.0
    assert oos > rnd
    assert oos > 0.0  # also beats staying flat, after fees and slippage
    # the policy learned the sign of the signal: long when the signal is high
    member = PolicyMember(pol)
    hi, lo = np.array([[2.0, 0.0, 0.0]], np.float32), np.array([[-2.0, 0.0, 0.0]], np.float32)
    assert member.predict_proba_raw(hi)[0].argmax() == LONG
    assert member.predict_proba_raw(lo)[0].argmax() == SHORT
    assert member.position_fraction(hi)[0] > 0.5 > -0.5 > member.position_fraction(lo)[0]


def test_training_is_deterministic(data) -> None:
    f, m = data
    again = train_policy(f[:4000], m[:4000], RLConfig.quick(seed=0, total_timesteps=1024))
    twice = train_policy(f[:4000], m[:4000], RLConfig.quick(seed=0, total_timesteps=1024))
    obs = again.observations(f[4000:4100])
    np.testing.assert_array_equal(again.action_probs(obs), twice.action_probs(obs))


def test_save_load_round_trip(tmp_path, data, trained) -> None:
    f, _ = data
    pol, _ = trained
    member = PolicyMember(pol)
    member.save(tmp_path / "ppo")
    back = PolicyMember.load(tmp_path / "ppo")
    assert back.feature_names == ["signal", "noise", "noisy_nan"] and back.name == "ppo"
    assert back.cfg == pol.cfg
    np.testing.assert_allclose(
        back.predict_proba_raw(f[4000:4500]), member.predict_proba_raw(f[4000:4500]), atol=0
    )
    with pytest.raises(FileNotFoundError, match=r"policy\.zip"):
        PolicyMember.load(tmp_path / "missing")


def test_onnx_parity(tmp_path, data, trained) -> None:
    import onnx
    import onnxruntime as ort

    f, _ = data
    pol, _ = trained
    member = PolicyMember(pol)
    path = tmp_path / "ppo.onnx"
    member.export_onnx(path)
    model = onnx.load(str(path))
    assert model.ir_version <= 10
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = f[4000:5000].copy()
    x[::7, 0] = np.nan
    x[3, 1] = 1e6  # clipped to +obs_clip
    (probs,) = sess.run(["probs"], {"x": x})
    assert probs.shape == (1000, 3)
    sb3 = pol.action_probs(pol.observations(x, 0.0))  # SB3's own action distribution
    np.testing.assert_allclose(probs, sb3, atol=1e-5)
    np.testing.assert_allclose(probs, member.predict_proba_raw(x), atol=1e-5)


def test_policy_member_fit_walk_forward(data) -> None:
    from types import SimpleNamespace

    f, m = data
    ds = SimpleNamespace(
        X=f[:1000], feature_names=["signal", "noise", "noisy_nan"], sample_idx=np.arange(0, 1000, 2)
    )
    member = PolicyMember(
        cfg=RLConfig.quick(total_timesteps=512, n_steps=256), mid=m[:1000], feature_names=["signal"]
    )
    with pytest.raises(ValueError, match="inside training rows"):
        member.fit(ds, np.arange(0, 400), np.arange(100, 150))
    member.fit(ds, np.arange(0, 300), np.arange(300, 500))
    assert member.feature_names == ["signal"]
    assert member.predict_proba_raw(f[600:610, :1]).shape == (10, 3)
    with pytest.raises(ValueError, match="mid must be given"):
        PolicyMember(cfg=RLConfig.quick()).fit(ds, np.arange(10), np.arange(10, 20))
