"""Streaming sequence networks (LSTM, Transformer, CNN): each learns a synthetic sequence signal well above
chance on held-out samples, gives the same outputs whatever the block size (row by row or in blocks),
is causal, matches its ONNX export within 1e-5 (NaN inputs included, state carried across calls),
trains deterministically, and fits its standardisation on training rows only."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from pydantic import ValidationError

from orderflow.features.config import FeatureConfig
from orderflow.features.registry import default_specs
from orderflow.models.base import Member, StreamInput, member_inputs, onnx_session
from orderflow.models.config import NetConfig
from orderflow.models.dataset import Dataset, schema_hash
from orderflow.models.nets import build_net, feature_groups, select_features
from orderflow.models.nets_train import NetMember, training_pieces

KINDS = ["lstm", "transformer", "cnn"]
NS = 1_000_000_000
SPECS = default_specs(FeatureConfig(tick_size=0.1))
CORE = [s.name for s in SPECS if s.group != "technical"][:9]
TECH = [s.name for s in SPECS if s.group == "technical"][:2]
NAMES = CORE + TECH  # signal in CORE[0]; TECH columns are noise the default config must skip


def synthetic(n_rows: int = 7000, seed: int = 0, every: int = 2) -> Dataset:
    """Label of the sample at row r: the sign (with a dead zone) of the sum of the signal column over
    rows r-7..r. Columns have large offsets/scales (standardisation matters) and 2% NaNs."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_rows, len(NAMES)))
    X = (z * rng.uniform(1, 50, len(NAMES)) + rng.uniform(-500, 500, len(NAMES))).astype(np.float32)
    nan = rng.random(X.shape) < 0.02
    nan[:, 0] = False
    X[nan] = np.nan
    s = np.convolve(z[:, 0], np.ones(8), mode="full")[:n_rows]  # sum of rows r-7..r
    sample_idx = np.arange(0, n_rows, every, dtype=np.int64)
    sv = s[sample_idx]
    y = np.where(sv > 1.2, 2, np.where(sv < -1.2, 0, 1)).astype(np.int64)
    ts = np.arange(n_rows, dtype=np.int64) * NS
    return Dataset(X=X, feature_names=list(NAMES), ts=ts, sample_idx=sample_idx, y=y,
                   t_touch=ts[sample_idx] + NS, schema_hash=schema_hash(NAMES))  # fmt: skip


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return synthetic()


def split(ds: Dataset):
    n = ds.n_samples
    a, b = int(n * 0.6), int(n * 0.8)
    return np.arange(a), np.arange(a, b), np.arange(b, n)


@pytest.fixture(scope="module")
def fitted(ds):
    tr, va, _ = split(ds)
    out = {}
    for kind in KINDS:
        m = NetMember(NetConfig.quick(kind))
        m.fit(ds, tr, va)
        out[kind] = m
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_learns_signal_out_of_sample(fitted, ds, kind):
    m = fitted[kind]
    assert isinstance(m, Member) and m.input_kind == "stream"
    assert m.seq_len == {"lstm": 129, "transformer": 16, "cnn": 16}[kind]  # receptive field
    assert m.feature_names == CORE  # default groups: everything but technical
    _, _, te = split(ds)
    p = m.predict_proba_raw(member_inputs(m, ds, te))
    assert p.shape == (len(te), 3) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    acc = float((p.argmax(1) == ds.y[te]).mean())
    prior = np.bincount(ds.y[te], minlength=3).max() / len(te)
    logloss = float(-np.log(np.maximum(p[np.arange(len(te)), ds.y[te]], 1e-12)).mean())
    prior_ll = float(-np.log(np.bincount(ds.y[te], minlength=3)[ds.y[te]] / len(te)).mean())
    assert acc > prior + 0.2, (kind, acc, prior)
    assert logloss < prior_ll - 0.25, (kind, logloss, prior_ll)
    assert m.history and 0 <= m.best_epoch < len(m.history)


def run_onnx_stream(sess, rows: np.ndarray, blocks: list[int]) -> np.ndarray:
    """Probabilities at every row from an exported stream graph, fed in blocks of the given sizes
    (cycled), carrying the state between calls."""
    names = [i.name for i in sess.get_inputs()][1:]
    state = [np.zeros([1 if isinstance(d, str) else d for d in i.shape], np.float32)
             for i in sess.get_inputs()[1:]]  # fmt: skip
    out, s, k = [], 0, 0
    while s < len(rows):
        b = blocks[k % len(blocks)]
        res = sess.run(None, {"x": rows[None, s : s + b], **dict(zip(names, state, strict=True))})
        out.append(res[0][0])
        state = res[1:]
        s, k = s + b, k + 1
    return np.concatenate(out)


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_matches_native(fitted, ds, kind, tmp_path):
    m = fitted[kind]
    path = tmp_path / f"{kind}.onnx"
    m.export_onnx(path)
    proto = onnx.load(str(path))
    assert proto.ir_version <= 10
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) <= 20
    states = list(m.net.state_names)
    assert [i.name for i in proto.graph.input] == ["x", *states]
    assert [o.name for o in proto.graph.output] == ["probs", *[f"{n}_out" for n in states]]
    sess = onnx_session(path)
    rows = ds.X[:700][:, ds.columns(m.feature_names)].copy()
    rows[::5, 1] = np.nan  # NaN cells
    rows[100:104, :] = np.nan  # whole NaN rows
    rows[50, 0] = 1e6  # far outside the training range (clipped)
    native = m.predict_proba_raw(StreamInput(rows, np.arange(len(rows))))
    for blocks in ([1], [64], [7, 1, 200, 33]):  # row by row, fixed blocks, ragged blocks
        ort_out = run_onnx_stream(sess, rows, blocks)
        assert ort_out.shape == native.shape
        np.testing.assert_allclose(ort_out, native, atol=1e-5, rtol=0)
    assert np.isfinite(native).all()


@pytest.mark.parametrize("kind", KINDS)
def test_stream_blocks_causality_and_receptive_field(fitted, ds, kind):
    m = fitted[kind]
    net = m.net
    x = torch.from_numpy(ds.X[:300][:, ds.columns(m.feature_names)])[None]
    with torch.no_grad():
        full = net(x, *net.init_state(1))[0]
        state, parts, s = net.init_state(1), [], 0
        for b in (1, 5, 64, 1, 100, 129):
            out, *state = net(x[:, s : s + b], *state)
            parts.append(out)
            s += b
        np.testing.assert_allclose(torch.cat(parts, 1).numpy(), full.numpy(), atol=2e-5)
        x2 = x.clone()
        x2[:, 200:] = torch.randn_like(x2[:, 200:]) * 100  # the future changes
        np.testing.assert_array_equal(net(x2, *net.init_state(1))[0][:, :200].numpy(), full[:, :200].numpy())
        if kind != "lstm":  # exact receptive field: rows older than it do not matter
            rf = m.cfg.receptive_field
            x3 = x.clone()
            x3[:, : 299 - rf + 1] = torch.randn_like(x3[:, : 299 - rf + 1]) * 100
            np.testing.assert_allclose(net(x3, *net.init_state(1))[0][:, 299].numpy(),
                                       full[:, 299].numpy(), atol=2e-5)  # fmt: skip
            x3[:, 299 - rf + 1] += 1.0  # ... but the oldest row inside it does
            assert not np.allclose(net(x3, *net.init_state(1))[0][:, 299].numpy(), full[:, 299].numpy())


def test_training_pieces():
    rows = np.r_[np.arange(100, 200, 2), np.arange(1000, 1100, 2)]  # a gap (a test fold) in the middle
    pieces = training_pieces(rows, warmup=10, piece_len=40)
    assert pieces[0] == (90, 130) and pieces[-1][1] == 1099
    assert all(e - s <= 40 + 10 for s, e in pieces)  # a short tail merges into the previous piece
    assert not any(s < 1000 - 10 < e or (s < 199 < e - 1 and e > 199) for s, e in pieces[:-3])
    covered = np.zeros(1200, bool)
    for s, e in pieces:
        covered[s:e] = True
    assert covered[rows].all() and not covered[200:990].any()  # the gap is never read
    with pytest.raises(ValueError, match="piece_len"):
        training_pieces(rows, warmup=40, piece_len=40)


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_training(ds, kind):
    tr, va, _ = split(ds)
    cfg = NetConfig.quick(kind, epochs=2, max_train_samples=600, dropout=0.1)
    a, b = NetMember(cfg), NetMember(cfg)
    a.fit(ds, tr, va)
    b.fit(ds, tr, va)
    sa, sb = a.net.state_dict(), b.net.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    c = NetMember(cfg.model_copy(update={"seed": 1}))
    c.fit(ds, tr, va)
    assert not torch.equal(c.net.state_dict()["head.weight"], sa["head.weight"])


def test_standardisation_uses_training_rows_only(ds):
    tr, va, _ = split(ds)
    cfg = NetConfig.quick("cnn", epochs=1, max_train_samples=None)
    a = NetMember(cfg)
    a.fit(ds, tr, va)
    X2 = ds.X.copy()
    first_val = ds.sample_idx[va[0]]
    X2[first_val:] = X2[first_val:] * 3.0 + 1000.0  # validation (and later) rows changed beyond recognition
    ds2 = Dataset(X2, ds.feature_names, ds.ts, ds.sample_idx, ds.y, ds.t_touch, ds.schema_hash)
    b = NetMember(cfg)
    b.fit(ds2, tr, va)
    for buf in ("mean", "std"):
        assert torch.equal(getattr(a.net.norm, buf), getattr(b.net.norm, buf))
    cols = ds.columns(a.feature_names)
    pieces = training_pieces(ds.sample_idx[tr], cfg.warmup_rows, cfg.piece_len)
    rows = np.concatenate([ds.X[s:e] for s, e in pieces])[:, cols].astype(np.float64)
    assert max(e for _, e in pieces) <= first_val
    np.testing.assert_allclose(a.net.norm.mean.numpy(), np.nanmean(rows, 0), rtol=1e-5)
    np.testing.assert_allclose(a.net.norm.std.numpy(), np.nanstd(rows, 0), rtol=1e-4)
    assert a.history[0]["val_loss"] != b.history[0]["val_loss"]  # validation did see the change


def test_state_roundtrip_and_errors(fitted, ds):
    m = fitted["lstm"]
    m2 = NetMember.from_state(m.state())
    x = member_inputs(m, ds, np.arange(20))
    np.testing.assert_array_equal(m2.predict_proba_raw(x), m.predict_proba_raw(x))
    with pytest.raises(ValueError, match="want"):
        m.predict_proba_raw(StreamInput(x.rows[:, :3], x.at))
    with pytest.raises(ValueError, match="ascending"):
        m.predict_proba_raw(StreamInput(x.rows, x.at[::-1].copy()))
    with pytest.raises(TypeError, match="StreamInput"):
        m.predict_proba_raw(x.rows)
    with pytest.raises(RuntimeError, match="not fitted"):
        NetMember(NetConfig.quick("cnn")).predict_proba_raw(x)


def test_config_validation_and_feature_selection():
    with pytest.raises(ValidationError):
        NetConfig(kind="lstm", hiden=3)  # unknown key
    with pytest.raises(ValidationError, match="divisible"):
        NetConfig(kind="transformer", hidden=100, heads=8)
    assert NetConfig(kind="cnn").receptive_field == 64  # 1 + 3*1 + 3*4 + 3*16
    assert NetConfig(kind="transformer").receptive_field == 3 * 63 + 1
    with pytest.raises(ValidationError, match="same non-zero length"):
        NetConfig(kind="cnn", channels=(8, 8), kernel_sizes=(3,), dilations=(1,))
    assert select_features(NetConfig(kind="cnn", groups=("technical",)), NAMES) == TECH
    assert select_features(NetConfig(kind="cnn", features=(CORE[2], CORE[0])), NAMES) == [CORE[0], CORE[2]]
    with pytest.raises(ValueError, match="not in the default registry"):
        feature_groups(["ofi_l1", "made_up_feature"])
    with pytest.raises(ValueError, match="not in the dataset"):
        select_features(NetConfig(kind="cnn", features=("nope",)), NAMES)


@pytest.mark.parametrize("kind", KINDS)
def test_default_sizes(kind):
    cfg = NetConfig(kind=kind)
    net = build_net(cfg, 108).eval()
    with torch.no_grad():
        out, *state = net(torch.randn(2, cfg.seq_len, 108), *net.init_state(2))
    assert out.shape == (2, cfg.seq_len, 3) and len(state) == len(net.state_names)
    if kind == "lstm":
        assert (net.rnn.num_layers, net.rnn.hidden_size) == (3, 128)
    elif kind == "transformer":
        assert len(net.blocks) == 3 and net.blocks[0].heads == 8 and net.proj.out_features == 128
    else:
        assert [c.out_channels for c in net.convs if isinstance(c, torch.nn.Conv1d)] == [64, 128, 256]


def test_class_weighted_and_no_validation(ds):
    tr, _, te = split(ds)
    keep = np.concatenate([tr[ds.y[tr] != 2], tr[ds.y[tr] == 2][::12]])  # class +1 rare (~60 samples)
    m = NetMember(NetConfig.quick("cnn", epochs=3, class_weighted=True))
    m.fit(ds, keep, np.array([], dtype=np.int64))  # no validation: all epochs, last kept
    assert len(m.history) == 3 and m.best_epoch == 2 and "val_loss" not in m.history[0]
    p = m.predict_proba_raw(member_inputs(m, ds, te))
    assert (p.argmax(1) == 2).sum() > 0.1 * len(te)  # the rare class is still predicted
    with pytest.raises(ValueError, match="empty training set"):
        m.fit(ds, np.array([], dtype=np.int64), te)
