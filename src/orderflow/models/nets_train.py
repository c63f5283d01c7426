"""``NetMember``: training, prediction and ONNX export of the sequence networks in ``nets``.

Training: AdamW (``lr``, ``weight_decay``), plain cross entropy by default (``class_weighted=True``
weights it by inverse training class frequency; calibration on the validation fold corrects the
resulting prior shift either way), global gradient-norm clipping, mini-batches drawn in a seeded
random order, early stopping on the **unweighted validation log loss** (the best epoch's weights are
kept; ``patience`` epochs without improvement stop training). Only the ``max_train_samples`` most
recent training samples are used. The standardisation buffers are fitted on the feature rows of those
training samples only (never on validation rows).

Determinism: inside ``fit`` the torch RNG is forked and seeded with ``cfg.seed`` (weight init and
dropout), batches are shuffled by ``numpy.random.default_rng(cfg.seed)``, intra-op threads are set to
``cfg.threads`` and ``torch.use_deterministic_algorithms(True, warn_only=True)``; the previous global
settings are restored afterwards. Same data + same config -> bit-identical weights on the same machine.

Windows are gathered from ``Dataset.X`` batch by batch (zero-padded before row 0, exactly as
``Dataset.sequences``), so the (samples, seq_len, features) tensor is never held whole.

ONNX: the legacy TorchScript exporter (``torch.onnx.export(..., dynamo=False)``); the dynamo exporter
of torch 2.13 needs ``onnxscript``, which is not a project dependency. Opset 17, dynamic batch axis,
input ``x`` float32 ``(n, seq_len, f)``, output ``probs`` float32 ``(n, 3)`` (softmax in the graph),
IR version capped at ``base.ONNX_IR_VERSION`` (10) so ONNX Runtime 1.31 loads it (the exporter
writes IR 8 today).
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from orderflow.models.base import ONNX_OPSET, onnx_session, save_onnx
from orderflow.models.nets import N_CLASSES, NetConfig, WithSoftmax, build_net, select_features

if TYPE_CHECKING:
    from orderflow.models.dataset import Dataset

log = logging.getLogger(__name__)

PREDICT_BATCH = 2048


@contextmanager
def torch_env(threads: int, seed: int | None = None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads, deterministic algorithms and (optionally) a forked,
    seeded torch RNG; restores the previous global settings on exit."""
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)


def gather_windows(X: np.ndarray, cols: np.ndarray, ends: np.ndarray, seq_len: int) -> np.ndarray:
    """Windows ``X[end-seq_len+1 .. end, cols]`` for each row index in ``ends``, zero rows before 0.

    Returns float32 ``(len(ends), seq_len, len(cols))`` (the newest row last).
    """
    ends = np.asarray(ends, dtype=np.int64)
    if len(ends) and (ends.min() < 0 or ends.max() >= len(X)):
        raise IndexError(f"gather_windows: row index out of range 0..{len(X) - 1}")
    rows = ends[:, None] + np.arange(1 - seq_len, 1, dtype=np.int64)[None, :]
    pad = rows < 0
    out = X[np.maximum(rows, 0)][:, :, cols].astype(np.float32, copy=False)
    if pad.any():
        out[pad] = 0.0
    return out


class NetMember:
    """A sequence ensemble member (``input_kind = "sequence"``) wrapping one network of ``nets``."""

    input_kind = "sequence"

    def __init__(self, cfg: NetConfig) -> None:
        self.cfg = cfg
        self.name: str = cfg.kind
        self.seq_len: int = cfg.seq_len
        self.feature_names: list[str] = []
        self.net: nn.Module | None = None
        self.history: list[dict[str, float]] = []
        self.best_epoch: int = -1

    # ------------------------------------------------------------------ training
    def fit(self, ds: Dataset, train_idx: np.ndarray, val_idx: np.ndarray) -> None:
        """Train on samples ``train_idx`` of ``ds``; early-stop on samples ``val_idx``."""
        cfg = self.cfg
        names = select_features(cfg, list(ds.feature_names))
        pos = {n: i for i, n in enumerate(ds.feature_names)}
        cols = np.array([pos[n] for n in names], dtype=np.int64)
        tr = np.sort(np.asarray(train_idx, dtype=np.int64))
        va = np.sort(np.asarray(val_idx, dtype=np.int64))
        if len(tr) == 0:
            raise ValueError(f"NetMember({self.name}).fit: empty training set")
        if cfg.max_train_samples is not None and len(tr) > cfg.max_train_samples:
            log.info("%s: using the %d most recent of %d training samples", self.name,
                     cfg.max_train_samples, len(tr))  # fmt: skip
            tr = tr[-cfg.max_train_samples :]
        y = np.asarray(ds.y, dtype=np.int64)
        ends_tr, y_tr = ds.sample_idx[tr], torch.from_numpy(y[tr])
        ends_va, y_va = ds.sample_idx[va], torch.from_numpy(y[va])
        counts = np.bincount(y[tr], minlength=N_CLASSES)
        weight = None
        if cfg.class_weighted:
            w = np.where(counts > 0, counts.sum() / (N_CLASSES * np.maximum(counts, 1)), 0.0)
            weight = torch.as_tensor(w, dtype=torch.float32)
        log.info("%s: fit on %d samples (classes %s), validate on %d, %d features, seq_len %d",
                 self.name, len(tr), counts.tolist(), len(va), len(cols), cfg.seq_len)  # fmt: skip
        if len(va) == 0:
            log.warning("%s: no validation samples: training %d epochs without early stopping",
                        self.name, cfg.epochs)  # fmt: skip

        with torch_env(cfg.threads, cfg.seed):
            net = build_net(cfg, len(cols))
            net.norm.fit(ds.X[ends_tr][:, cols])  # type: ignore[union-attr, operator]
            opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            loss_fn = nn.CrossEntropyLoss(weight=weight)
            rng = np.random.default_rng(cfg.seed)
            n_batches = -(-len(tr) // cfg.batch_size)
            best, best_state, bad = np.inf, copy.deepcopy(net.state_dict()), 0
            self.history = []
            bar = tqdm(total=cfg.epochs * n_batches, desc=f"train {self.name}", unit="batch",
                       disable=not sys.stderr.isatty(), leave=False)  # fmt: skip
            try:
                for epoch in range(cfg.epochs):
                    net.train()
                    order = rng.permutation(len(tr))
                    total = 0.0
                    for b in range(n_batches):
                        sel = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                        xb = torch.from_numpy(gather_windows(ds.X, cols, ends_tr[sel], cfg.seq_len))
                        loss = loss_fn(net(xb), y_tr[sel])
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                        opt.step()
                        total += float(loss.detach()) * len(sel)
                        bar.update(1)
                    rec = {"epoch": float(epoch), "train_loss": total / len(tr)}
                    if len(va):
                        logits = self._logits(net, ds.X, cols, ends_va)
                        rec["val_loss"] = float(nn.functional.cross_entropy(logits, y_va))
                        rec["val_acc"] = float((logits.argmax(1) == y_va).float().mean())
                    self.history.append(rec)
                    bar.set_postfix({k: round(v, 4) for k, v in rec.items() if k != "epoch"})
                    log.info("%s epoch %d: %s", self.name, epoch, rec)
                    if not len(va):
                        best_state, self.best_epoch = copy.deepcopy(net.state_dict()), epoch
                        continue
                    if rec["val_loss"] < best - 1e-6:
                        best, bad, self.best_epoch = rec["val_loss"], 0, epoch
                        best_state = copy.deepcopy(net.state_dict())
                    else:
                        bad += 1
                        if bad >= cfg.patience:
                            log.info("%s: early stop after epoch %d (best %d, val log loss %.5f)",
                                     self.name, epoch, self.best_epoch, best)  # fmt: skip
                            break
            finally:
                bar.close()
            net.load_state_dict(best_state)
            net.eval()
        self.net = net
        self.feature_names = names

    def _logits(self, net: nn.Module, X: np.ndarray, cols: np.ndarray, ends: np.ndarray) -> torch.Tensor:
        net.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(ends), PREDICT_BATCH):
                xb = gather_windows(X, cols, ends[s : s + PREDICT_BATCH], self.cfg.seq_len)
                out.append(net(torch.from_numpy(xb)))
        return torch.cat(out) if out else torch.zeros((0, N_CLASSES))

    # ------------------------------------------------------------------ inference
    def _require(self) -> nn.Module:
        if self.net is None:
            raise RuntimeError(f"NetMember({self.name}): not fitted")
        return self.net

    def predict_proba_raw(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, 3)`` float32 for windows ``x`` ``(n, seq_len, f)`` (NaN allowed)."""
        net = self._require()
        x = np.asarray(x, dtype=np.float32)
        want = (self.seq_len, len(self.feature_names))
        if x.ndim != 3 or x.shape[1:] != want:
            raise ValueError(f"NetMember({self.name}).predict_proba_raw: x of shape {x.shape}, "
                             f"want (n, {want[0]}, {want[1]})")  # fmt: skip
        net.eval()
        out = []
        with torch_env(self.cfg.threads), torch.no_grad():
            for s in range(0, len(x), PREDICT_BATCH):
                out.append(torch.softmax(net(torch.from_numpy(x[s : s + PREDICT_BATCH])), dim=-1))
        if not out:
            return np.zeros((0, N_CLASSES), np.float32)
        return torch.cat(out).numpy().astype(np.float32, copy=False)

    def export_onnx(self, path: Path) -> None:
        """Write the network + softmax as ONNX (input ``x``, output ``probs``, dynamic batch axis)."""
        import onnx

        net = self._require()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        model = WithSoftmax(copy.deepcopy(net)).eval()
        dummy = torch.zeros((2, self.seq_len, len(self.feature_names)), dtype=torch.float32)
        with warnings.catch_warnings(), torch_env(1):
            warnings.simplefilter("ignore")  # deprecation / RNN batch-size tracer warnings
            torch.onnx.export(model, (dummy,), str(path), input_names=["x"], output_names=["probs"],
                              dynamic_axes={"x": {0: "batch"}, "probs": {0: "batch"}},
                              opset_version=ONNX_OPSET, dynamo=False)  # fmt: skip
        proto = onnx.load(str(path))
        written_ir = proto.ir_version
        meta = {"member": self.name, "seq_len": str(self.seq_len), "classes": "-1,0,1",
                "feature_names": json.dumps(self.feature_names)}  # fmt: skip
        onnx.helper.set_model_props(proto, meta)
        save_onnx(proto, path)  # checks the graph, caps the IR version at ONNX_IR_VERSION
        onnx_session(path)  # must load in ONNX Runtime
        log.info("%s: ONNX written to %s (exporter IR %d, saved IR %d, opset %d)", self.name, path,
                 written_ir, proto.ir_version, ONNX_OPSET)  # fmt: skip

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, Any]:
        """Config, feature names and weights (for ``torch.save``)."""
        return {"cfg": self.cfg.model_dump(), "feature_names": list(self.feature_names),
                "state_dict": self._require().state_dict(), "history": self.history}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> NetMember:
        """Rebuild a fitted member from :meth:`state`."""
        m = cls(NetConfig(**state["cfg"]))
        m.feature_names = list(state["feature_names"])
        net = build_net(m.cfg, len(m.feature_names))
        net.load_state_dict(state["state_dict"])
        m.net = net.eval()
        m.history = list(state.get("history", []))
        return m
