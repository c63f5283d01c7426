"""Hot reload: a streaming loop keeps predicting while the registry's champion changes; a bundle with
another feature schema is refused and the running model stays."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from orderflow.models.registry import BundleManifest, EnsembleEntry, MemberEntry, Registry, write_manifest
from orderflow.models.serving import EnsembleModel, HotReloader, ModelNotReady
from support.bundles import FEATURES, METRICS, lr_bundle

X = np.array([[1.5, 0.0, 0.2], [-1.5, 0.3, 0.1]], dtype=np.float32)  # two feature rows


@pytest.mark.slow
def test_streaming_engine_switches_version_and_refuses_schema_mismatch(tmp_path, caplog):
    reg_dir = tmp_path / "registry"
    admin = Registry(reg_dir)  # the operator's CLI
    v1 = admin.register(lr_bundle(tmp_path / "b1", +1.0))
    v2 = admin.register(lr_bundle(tmp_path / "b2", -1.0))
    other = ["ofi_l1", "cvd_5s", "spread_bps"]
    v3 = admin.register(lr_bundle(tmp_path / "b3", +1.0, features=other, schema="schema-B"))
    want = {v: EnsembleModel.from_bundle(admin.load_bundle(v), None).predict(X) for v in (v1, v2)}
    assert np.argmax(want[v1], axis=1).tolist() == [2, 0] and np.argmax(want[v2], axis=1).tolist() == [0, 2]

    engine_registry = Registry(reg_dir)  # the running engine has its own connection
    reloader = HotReloader(
        engine_registry, "champion", "schema-A", poll_s=0.05, expected_feature_names=FEATURES
    )
    reloader.start()
    assert reloader.current_version is None
    with pytest.raises(ModelNotReady):
        reloader.predict(X)
    admin.promote(v1)
    _wait(lambda: reloader.current_version == v1)

    seen: list[tuple[str, np.ndarray]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def stream() -> None:  # the engine's hot loop: predicts on every "event", never restarts
        while not stop.is_set():
            try:
                seen.append(reloader.predict_versioned(X))
            except BaseException as e:
                errors.append(e)
            time.sleep(0.002)

    t = threading.Thread(target=stream)
    t.start()
    try:
        _wait(lambda: len(seen) > 20)
        admin.promote(v2)
        _wait(lambda: seen[-1][0] == v2)
        n_switch = len(seen)
        caplog.set_level(logging.ERROR, logger="orderflow.models.serving")
        admin.promote(v3, force=True)  # forced past the rule, but its feature schema differs
        _wait(lambda: any(not e.ok for e in reloader.events))
        _wait(lambda: len(seen) > n_switch + 20)
    finally:
        stop.set()
        t.join(5)
        reloader.stop()

    assert not errors
    versions = [v for v, _ in seen]
    first_v2 = versions.index(v2)
    assert set(versions[:first_v2]) == {v1} and set(versions[first_v2:]) == {v2}  # one clean switch
    for v, p in seen:
        np.testing.assert_allclose(p, want[v], atol=1e-6)
    assert reloader.current_version == v2

    ev = reloader.events
    assert [(e.from_version, e.to_version, e.ok) for e in ev] == [
        (None, v1, True),
        (v1, v2, True),
        (v2, v3, False),
    ]
    assert "schema-B" in ev[-1].error and "schema-A" in ev[-1].error
    assert "#1: expected 'cvd_1s', bundle has 'cvd_5s'" in ev[-1].error
    assert any(f"refused version {v3}, still serving {v2}" in r.getMessage() for r in caplog.records)


def _wait(cond, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"condition not reached within {timeout:.0f} s")
        time.sleep(0.01)


def cnn_bundle(d: Path, seed: int, features: list[str] = FEATURES) -> Path:
    """A bundle holding one streaming CNN member with random weights (seeded), exported to ONNX."""
    import torch

    from orderflow.models.config import NetConfig
    from orderflow.models.nets import build_net
    from orderflow.models.nets_train import NetMember, torch_env

    cfg = NetConfig.quick("cnn")
    m = NetMember(cfg)
    with torch_env(1, seed):
        m.net = build_net(cfg, len(features)).eval()
        with torch.no_grad():
            m.net.head.bias += torch.tensor([seed * 0.3, 0.0, -seed * 0.3])
    m.feature_names = list(features)
    d.mkdir(parents=True)
    m.export_onnx(d / "cnn.onnx")
    member = MemberEntry(name="cnn", input_kind="stream", seq_len=m.seq_len, feature_names=features,
                         onnx="cnn.onnx")  # fmt: skip
    manifest = BundleManifest(feature_names=features, schema_hash="schema-A", members=[member],
                              ensemble=EnsembleEntry(weights={"cnn": 1.0}), metrics=METRICS)  # fmt: skip
    write_manifest(d, manifest)
    return d


@pytest.mark.slow
def test_hot_stream_keeps_state_and_rewarms_a_new_version(tmp_path):
    admin = Registry(tmp_path / "registry")
    v1 = admin.register(cnn_bundle(tmp_path / "b1", 1))
    v2 = admin.register(cnn_bundle(tmp_path / "b2", 2))
    rows = np.random.default_rng(5).normal(size=(300, len(FEATURES))).astype(np.float32)
    m1 = EnsembleModel.from_bundle(admin.load_bundle(v1), "schema-A")
    m2 = EnsembleModel.from_bundle(admin.load_bundle(v2), "schema-A")
    full1, full2 = m1.predict(rows), m2.predict(rows)  # each version over the whole stream from row 0
    assert m1.context_rows == 15  # quick CNN: receptive field 16

    reloader = HotReloader(Registry(tmp_path / "registry"), "champion", "schema-A", poll_s=60)
    admin.promote(v1, force=True)
    assert reloader.check_now()
    stream = reloader.stream()
    got = [stream.update(rows[i]) for i in range(200)]  # one row per event, state carried
    assert {v for v, _ in got} == {v1}
    np.testing.assert_allclose(np.concatenate([p for _, p in got]), full1[:200], atol=1e-5)

    admin.promote(v2, force=True)
    assert reloader.check_now()
    v, p = stream.update(rows[200:300])  # the new version, its state warmed on the last rows first
    assert v == v2
    np.testing.assert_allclose(p, full2[200:300], atol=1e-5)  # as if it had run from the start
    assert np.abs(p - full1[200:300]).max() > 1e-3  # and not the old version's output
    with pytest.raises(ValueError, match="expected"):
        stream.update(rows[:2, :2])


@pytest.mark.slow
def test_paper_engine_swaps_the_model_when_a_new_champion_is_promoted(tmp_path):
    """`orderflow paper --model production` serves the registry champion through a hot reloader; an
    operator's `orderflow models promote` during the run swaps the running engine's model, and the
    journal records both versions."""
    import os
    import subprocess
    import sys

    from orderflow.journal import Journal

    repo = Path(__file__).resolve().parents[2]
    feats = ["ofi_int_z_1s", "cvd_z_1s", "spread_bps"]
    reg = tmp_path / "registry"
    admin = Registry(reg)
    v1 = admin.register(lr_bundle(tmp_path / "b1", +1.0, features=feats))
    v2 = admin.register(lr_bundle(tmp_path / "b2", -1.0, features=feats))
    admin.promote(v1)
    env = {**os.environ, "ORDERFLOW_REGISTRY": str(reg)}
    db = tmp_path / "j.sqlite"
    cli = [sys.executable, "-m", "orderflow.cli"]
    # 0.6 min: `models promote` is a new interpreter that imports MLflow (5-15 s on 2 busy cores), and the
    # swap must land while the run still trades
    paper = subprocess.Popen([*cli, "paper", "--model", "production", "--minutes", "0.6", "--speed", "20",
                              "--db", str(db), "--log-level", "WARNING"], cwd=repo, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and paper.poll() is None:  # wait until it trades on v1
            time.sleep(0.3)
            try:
                with Journal.open(str(db)) as j:
                    if j.summary()["equity"]:
                        break
            except Exception:
                continue  # the engine is creating the schema
        assert paper.poll() is None, paper.communicate()[0]
        promote = subprocess.run([*cli, "models", "promote", v2], cwd=repo, env=env, capture_output=True,
                                 text=True, timeout=120)  # fmt: skip
        assert promote.returncode == 0, promote.stdout + promote.stderr
        out, _ = paper.communicate(timeout=120)
    finally:
        if paper.poll() is None:
            paper.kill()
    assert paper.returncode == 0, out
    assert f"registry champion, version {v1}" in out, out
    assert f"model hot reloads: {v1} -> {v2}" in out, out
    with Journal.open(str(db)) as j:
        assert j.summary()["model"]["version"] == v2, j.summary()
