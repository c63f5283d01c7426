"""``NetMember``: training, streaming prediction and ONNX export of the networks in ``nets``.

Training streams, not windows. The training samples are cut into *segments* of consecutive rows
(a gap of more than ``4 x`` the median row distance between training samples, such as a purged test
fold, starts a new segment; a segment starts ``warmup_rows`` rows before its first sample), segments
into *pieces* of at most ``piece_len`` rows, and each optimizer step advances ``streams`` pieces by
``seq_len`` rows with the state carried from the previous step (detached: truncated
backpropagation). The loss is the cross entropy at the training samples' rows only, skipping the
first ``warmup_rows`` rows of each piece, where the state is still filling; every other row is only
context. So each row costs one network step, not a whole window, and the network never reads a row of
a test fold while it trains.

AdamW (``lr``, ``weight_decay``), plain cross entropy by default (``class_weighted=True`` weights it by
inverse training class frequency; calibration on the validation fold corrects the resulting prior
shift either way), global gradient-norm clipping, pieces in a seeded random order each epoch, early
stopping on the **unweighted validation log loss** (the best epoch's weights are kept; ``patience``
epochs without improvement stop training). Only the ``max_train_samples`` most recent training samples
are used. The standardisation buffers are fitted on the rows of the training pieces only.

Determinism: inside ``fit`` the torch RNG is forked and seeded with ``cfg.seed`` (weight init and
dropout), pieces are shuffled by ``numpy.random.default_rng(cfg.seed)``, intra-op threads are set to
``cfg.threads`` and ``torch.use_deterministic_algorithms(True, warn_only=True)``; the previous global
settings are restored afterwards. Same data + same config -> bit-identical weights on the same machine.

ONNX: the legacy TorchScript exporter (``torch.onnx.export(..., dynamo=False)``; the dynamo exporter of
torch 2.13 needs ``onnxscript``, not a project dependency). Opset 17. Inputs ``x`` float32
``(n, b, f)`` (dynamic n and b) and the state tensors (names ``LSTMNet.state_names`` etc., dynamic n);
outputs ``probs`` float32 ``(n, b, 3)`` (softmax in the graph) and the new state as ``<name>_out``.
The graph's metadata lists the state names and their shapes for one stream. IR version capped at
``base.ONNX_IR_VERSION`` (10) so ONNX Runtime 1.31 loads it.
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

from orderflow.models.base import ONNX_OPSET, StreamInput, onnx_session, save_onnx
from orderflow.models.config import NetConfig
from orderflow.models.nets import N_CLASSES, WithSoftmax, build_net, select_features

if TYPE_CHECKING:
    from orderflow.models.dataset import Dataset

log = logging.getLogger(__name__)

PREDICT_BLOCK = 512
IGNORE = -100


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


def training_pieces(
    sample_rows: np.ndarray, warmup: int, piece_len: int, gap_factor: float = 4.0
) -> list[tuple[int, int]]:
    """``(start, stop)`` row ranges (stop exclusive) covering the training samples' rows (sorted).

    Samples further apart than ``gap_factor`` times the median distance start a new segment; each
    segment begins ``warmup`` rows before its first sample (not before row 0) and ends at its last
    sample; segments are cut into pieces of at most ``piece_len`` rows, and a piece shorter than
    ``warmup + 1`` rows is merged into the previous piece of its segment.
    """
    rows = np.asarray(sample_rows, dtype=np.int64)
    if rows.size == 0:
        return []
    if piece_len <= warmup:
        raise ValueError(f"training_pieces: piece_len {piece_len} must exceed warmup {warmup}")
    d = np.diff(rows)
    limit = gap_factor * max(float(np.median(d)) if d.size else 1.0, 1.0)
    cuts = np.flatnonzero(d > limit) + 1
    out: list[tuple[int, int]] = []
    for seg in np.split(rows, cuts):
        lo, hi = max(0, int(seg[0]) - warmup), int(seg[-1]) + 1
        seg_pieces: list[tuple[int, int]] = []
        for s in range(lo, hi, piece_len):
            e = min(s + piece_len, hi)
            if seg_pieces and e - s <= warmup:
                seg_pieces[-1] = (seg_pieces[-1][0], e)
            else:
                seg_pieces.append((s, e))
        out += seg_pieces
    return out


class NetMember:
    """A stream ensemble member (``input_kind = "stream"``) wrapping one network of ``nets``."""

    input_kind = "stream"

    def __init__(self, cfg: NetConfig) -> None:
        self.cfg = cfg
        self.name: str = cfg.kind
        self.seq_len: int = cfg.receptive_field  # rows of history one prediction depends on
        self.context_rows: int = cfg.receptive_field - 1
        self.feature_names: list[str] = []
        self.net: nn.Module | None = None
        self.history: list[dict[str, float]] = []
        self.best_epoch: int = -1

    # ------------------------------------------------------------------ training
    def fit(self, ds: Dataset, train_idx: np.ndarray, val_idx: np.ndarray) -> None:
        """Train on samples ``train_idx`` of ``ds``; early-stop on samples ``val_idx``."""
        cfg = self.cfg
        names = select_features(cfg, list(ds.feature_names))
        cols = ds.columns(names)
        tr = np.sort(np.asarray(train_idx, dtype=np.int64))
        va = np.sort(np.asarray(val_idx, dtype=np.int64))
        if len(tr) == 0:
            raise ValueError(f"NetMember({self.name}).fit: empty training set")
        if cfg.max_train_samples is not None and len(tr) > cfg.max_train_samples:
            log.info("%s: using the %d most recent of %d training samples", self.name,
                     cfg.max_train_samples, len(tr))  # fmt: skip
            tr = tr[-cfg.max_train_samples :]
        y_all = np.asarray(ds.y, dtype=np.int64)
        target = np.full(len(ds.X), IGNORE, dtype=np.int64)  # label at training sample rows only
        target[ds.sample_idx[tr]] = y_all[tr]
        pieces = training_pieces(ds.sample_idx[tr], cfg.warmup_rows, cfg.piece_len)
        counts = np.bincount(y_all[tr], minlength=N_CLASSES)
        weight = None
        if cfg.class_weighted:
            w = np.where(counts > 0, counts.sum() / (N_CLASSES * np.maximum(counts, 1)), 0.0)
            weight = torch.as_tensor(w, dtype=torch.float32)
        n_rows = sum(e - s for s, e in pieces)
        log.info("%s: fit on %d samples (classes %s) over %d rows in %d pieces, validate on %d, "
                 "%d features", self.name, len(tr), counts.tolist(), n_rows, len(pieces), len(va),
                 len(cols))  # fmt: skip
        if len(va) == 0:
            log.warning("%s: no validation samples: training %d epochs without early stopping",
                        self.name, cfg.epochs)  # fmt: skip
        va_input = self._stream_input(ds, cols, va) if len(va) else None
        y_va = torch.from_numpy(y_all[va])

        with torch_env(cfg.threads, cfg.seed):
            net = build_net(cfg, len(cols))
            fit_rows = np.concatenate([ds.X[s:e][:, cols] for s, e in pieces])
            net.norm.fit(fit_rows)  # type: ignore[union-attr, operator]
            del fit_rows
            opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            loss_fn = nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE)
            rng = np.random.default_rng(cfg.seed)
            batches_per_epoch = -(-len(pieces) // cfg.streams)
            best, best_state, bad = np.inf, copy.deepcopy(net.state_dict()), 0
            self.history = []
            bar = tqdm(total=cfg.epochs * batches_per_epoch, desc=f"train {self.name}", unit="batch",
                       disable=not sys.stderr.isatty(), leave=False)  # fmt: skip
            try:
                for epoch in range(cfg.epochs):
                    net.train()
                    order = rng.permutation(len(pieces))
                    total, n_lab = 0.0, 0
                    for b in range(batches_per_epoch):
                        sel = [pieces[i] for i in order[b * cfg.streams : (b + 1) * cfg.streams]]
                        s_loss, s_n = self._train_batch(net, opt, loss_fn, ds.X, cols, target, sel)
                        total, n_lab = total + s_loss, n_lab + s_n
                        bar.update(1)
                    rec = {"epoch": float(epoch), "train_loss": total / max(n_lab, 1)}
                    if va_input is not None:
                        logits = torch.from_numpy(self._stream_logits(net, va_input))
                        rec["val_loss"] = float(nn.functional.cross_entropy(logits, y_va))
                        rec["val_acc"] = float((logits.argmax(1) == y_va).float().mean())
                    self.history.append(rec)
                    bar.set_postfix({k: round(v, 4) for k, v in rec.items() if k != "epoch"})
                    log.debug("%s epoch %d: %s", self.name, epoch, rec)
                    if va_input is None:
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

    def _train_batch(
        self,
        net: nn.Module,
        opt: torch.optim.Optimizer,
        loss_fn: nn.Module,
        X: np.ndarray,
        cols: np.ndarray,
        target: np.ndarray,
        pieces: list[tuple[int, int]],
    ) -> tuple[float, int]:
        """Advance ``pieces`` in parallel, ``seq_len`` rows per optimizer step; (sum of loss, labels)."""
        cfg = self.cfg
        length = max(e - s for s, e in pieces)
        xb = np.zeros((len(pieces), length, len(cols)), dtype=np.float32)
        yb = np.full((len(pieces), length), IGNORE, dtype=np.int64)
        for i, (s, e) in enumerate(pieces):
            xb[i, : e - s] = X[s:e][:, cols]
            yb[i, : e - s] = target[s:e]
        yb[:, : cfg.warmup_rows] = IGNORE  # the state is still filling
        x_t, y_t = torch.from_numpy(xb), torch.from_numpy(yb)
        state = net.init_state(len(pieces))  # type: ignore[operator]
        total, n_lab = 0.0, 0
        for c in range(0, length, cfg.seq_len):
            yc = y_t[:, c : c + cfg.seq_len]
            n = int((yc != IGNORE).sum())
            if n == 0:  # context only: advance the state without a graph
                with torch.no_grad():
                    _, *state = net(x_t[:, c : c + cfg.seq_len], *state)
                continue
            logits, *state = net(x_t[:, c : c + cfg.seq_len], *state)
            loss = loss_fn(logits.reshape(-1, N_CLASSES), yc.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            state = [s.detach() for s in state]
            total += float(loss.detach()) * n
            n_lab += n
        return total, n_lab

    def _stream_input(self, ds: Dataset, cols: np.ndarray, idx: np.ndarray) -> StreamInput:
        rows = ds.sample_idx[idx]
        start = max(0, int(rows[0]) - self.context_rows)
        x = np.ascontiguousarray(ds.X[start : int(rows[-1]) + 1][:, cols], dtype=np.float32)
        return StreamInput(x, rows - start)

    def _stream_logits(self, net: nn.Module, inp: StreamInput) -> np.ndarray:
        """Logits (len(inp.at), 3) from one stream over ``inp.rows`` starting at a zero state."""
        net.eval()
        at = np.asarray(inp.at, dtype=np.int64)
        out = np.zeros((at.size, N_CLASSES), dtype=np.float32)
        if at.size == 0:
            return out
        x = torch.from_numpy(np.ascontiguousarray(inp.rows[: int(at.max()) + 1], dtype=np.float32))[None]
        state = net.init_state(1)  # type: ignore[operator]
        with torch.no_grad():
            for s in range(0, x.shape[1], PREDICT_BLOCK):
                logits, *state = net(x[:, s : s + PREDICT_BLOCK], *state)
                lo, hi = np.searchsorted(at, [s, s + logits.shape[1]])
                out[lo:hi] = logits[0, at[lo:hi] - s].numpy()
        return out

    # ------------------------------------------------------------------ inference
    def _require(self) -> nn.Module:
        if self.net is None:
            raise RuntimeError(f"NetMember({self.name}): not fitted")
        return self.net

    def predict_proba_raw(self, x: StreamInput) -> np.ndarray:
        """Class probabilities ``(len(x.at), 3)`` float32 at rows ``x.at`` of the stream ``x.rows``."""
        net = self._require()
        if not isinstance(x, StreamInput):
            raise TypeError(f"NetMember({self.name}).predict_proba_raw: want a StreamInput, got "
                            f"{type(x).__name__}")  # fmt: skip
        if x.rows.ndim != 2 or x.rows.shape[1] != len(self.feature_names):
            raise ValueError(f"NetMember({self.name}).predict_proba_raw: rows of shape {x.rows.shape}, "
                             f"want (m, {len(self.feature_names)})")  # fmt: skip
        if x.at.size and (np.any(np.diff(x.at) < 0) or x.at.min() < 0 or x.at.max() >= len(x.rows)):
            raise ValueError(f"NetMember({self.name}).predict_proba_raw: positions must be ascending "
                             f"within 0..{len(x.rows) - 1}")  # fmt: skip
        with torch_env(self.cfg.threads):
            logits = torch.from_numpy(self._stream_logits(net, x))
        return torch.softmax(logits, dim=-1).numpy().astype(np.float32, copy=False)

    def export_onnx(self, path: Path) -> None:
        """Write the network + softmax as ONNX (module docstring: inputs, outputs, state)."""
        import onnx

        net = self._require()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        model = WithSoftmax(copy.deepcopy(net)).eval()
        names = list(net.state_names)  # type: ignore[arg-type]
        state = net.init_state(2)  # type: ignore[operator]
        dummy = torch.zeros((2, 3, len(self.feature_names)), dtype=torch.float32)
        n_axis = dict(zip(names, net.state_batch_axes, strict=True))  # type: ignore[arg-type]
        axes: dict[str, dict[int, str]] = {"x": {0: "n", 1: "b"}, "probs": {0: "n", 1: "b"}}
        for name, ax in n_axis.items():
            axes[name] = {ax: "n"}
            axes[f"{name}_out"] = {ax: "n"}
        with warnings.catch_warnings(), torch_env(1):
            warnings.simplefilter("ignore")  # deprecation / RNN batch-size tracer warnings
            torch.onnx.export(model, (dummy, *state), str(path), input_names=["x", *names],
                              output_names=["probs", *[f"{n}_out" for n in names]], dynamic_axes=axes,
                              opset_version=ONNX_OPSET, dynamo=False)  # fmt: skip
        proto = onnx.load(str(path))
        written_ir = proto.ir_version
        one = net.init_state(1)  # type: ignore[operator]
        spec = [{"name": n, "shape": list(s.shape)} for n, s in zip(names, one, strict=True)]
        meta = {"member": self.name, "classes": "-1,0,1", "feature_names": json.dumps(self.feature_names),
                "receptive_field": str(self.seq_len), "infer_block": str(self.cfg.block),
                "state": json.dumps(spec)}  # fmt: skip
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
