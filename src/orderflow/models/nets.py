"""PyTorch **streaming** sequence networks (LSTM, Transformer, CNN); their configuration is
``models.config.NetConfig``.

Every network is causal and stateful: ``forward(x, *state)`` reads a block ``x`` of shape
``(n, b, f)`` (n independent streams, b consecutive raw float32 feature rows each, oldest first) and the
state carried from the previous block, and returns class logits ``(n, b, 3)`` for the classes
(-1, 0, +1) at **every** row plus the new state. Feeding a stream in blocks of any size gives the same
outputs (up to float rounding) as feeding it row by row, so one graph serves both the live path (b = 1,
one new row per book event) and the backtest path (b in the hundreds), and each new row costs O(1)
work instead of a whole 64-row window. ``init_state(n)`` is the state at the start of a stream (zeros).

The first layer of each network is :class:`Standardise`: ``(x - mean) / std`` with ``mean``/``std``
buffers fitted on training rows only, then NaN -> 0 and a clip to ``±cfg.clip``; because it is part
of the module, the exported ONNX graph does exactly the same.

- ``lstm``: ``layers`` stacked LSTM layers of ``hidden`` units, state ``(h, c)``; the output at each
  row -> linear head. ``seq_len`` is the truncated-backpropagation length in training. Its memory is
  unbounded: research predictions warm it up over ``context_rows`` rows before the first scored row;
  the backtest and the live engine run it from the start of the replay or session.
- ``transformer``: linear projection to ``d_model = hidden``, then ``layers`` pre-norm layers whose
  causal attention sees the last ``seq_len`` rows (the row itself included) with a learned relative
  position bias per head (sliding-window attention, as in Longformer/Mistral), feed-forward
  ``ff_mult * hidden`` with GELU, a final LayerNorm and a linear head at each row. The state is the
  key/value cache of the last ``seq_len - 1`` rows per layer plus a validity mask (rows before the
  start of the stream are masked out). The output at a row depends exactly on the last
  ``layers * (seq_len - 1) + 1`` rows.
- ``cnn``: causal dilated 1-D convolutions over time in the DeepLOB/WaveNet spirit, with the features
  as input channels (the feature vector is heterogeneous, not a price-level grid, so convolving across
  it would be meaningless): ``channels`` (64, 128, 256), ``kernel_sizes`` (4, 4, 4), ``dilations``
  (1, 4, 16): receptive field ``1 + sum((k - 1) * d)`` = 64 rows = ``seq_len``; LeakyReLU; a linear
  head on the last layer's channels at each row. The state is the last ``receptive field - 1``
  standardised rows.

:class:`~orderflow.models.nets_train.NetMember` trains these and exports them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn

from orderflow.models.config import NetConfig

N_CLASSES = 3


class Standardise(nn.Module):
    """``clip(nan_to_0((x - mean) / std), ±clip)`` with buffers fitted on training rows."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_features: int, clip: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.clip = float(clip)

    def fit(self, rows: np.ndarray) -> None:
        """Set mean/std from ``rows`` (n, f) ignoring NaN/inf; constant or empty columns get std 1."""
        r = np.asarray(rows, dtype=np.float64)
        if r.ndim != 2 or r.shape[1] != self.mean.shape[0]:
            raise ValueError(f"Standardise.fit: rows of shape {r.shape}, want (n, {self.mean.shape[0]})")
        r = np.where(np.isfinite(r), r, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            mean = np.nanmean(r, axis=0)
            std = np.nanstd(r, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        z = torch.where(torch.isnan(z), torch.zeros_like(z), z)
        return torch.clamp(z, -self.clip, self.clip)


class LSTMNet(nn.Module):
    """Stacked LSTM; state ``(h, c)`` each ``(layers, n, hidden)``; a head at every row."""

    state_names = ("h", "c")
    state_batch_axes = (1, 1)  # the stream axis of each state tensor

    def __init__(self, n_features: int, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.norm = Standardise(n_features, cfg.clip)
        drop = cfg.dropout if cfg.layers > 1 else 0.0
        self.rnn = nn.LSTM(n_features, cfg.hidden, cfg.layers, batch_first=True, dropout=drop)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, N_CLASSES)

    def init_state(self, n: int) -> tuple[torch.Tensor, ...]:
        z = torch.zeros((self.cfg.layers, n, self.cfg.hidden))
        return z, z.clone()

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, (h1, c1) = self.rnn(self.norm(x), (h, c))
        return self.head(self.drop(out)), h1, c1


class _CausalLayer(nn.Module):
    """Pre-norm layer with sliding-window attention over a key/value cache, then a feed-forward."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.heads, self.dh = cfg.heads, d // cfg.heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ff1 = nn.Linear(d, cfg.ff_mult * d)
        self.ff2 = nn.Linear(cfg.ff_mult * d, d)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self, h: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor, bias: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, b, d = h.shape
        qkv = self.qkv(self.ln1(h)).reshape(n, b, 3, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        keys = torch.cat([kc, qkv[1]], dim=2)  # (n, heads, C + b, dh)
        vals = torch.cat([vc, qkv[2]], dim=2)
        att = torch.softmax(qkv[0] @ keys.transpose(-1, -2) * (1.0 / math.sqrt(self.dh)) + bias, dim=-1)
        o = (att @ vals).transpose(1, 2).reshape(n, b, d)
        h = h + self.drop(self.out(o))
        h = h + self.drop(self.ff2(nn.functional.gelu(self.ff1(self.ln2(h)))))
        c = kc.shape[2]
        return h, keys[:, :, keys.shape[2] - c :], vals[:, :, vals.shape[2] - c :]


class TransformerNet(nn.Module):
    """Causal sliding-window Transformer with a key/value cache (module docstring).

    State: ``k`` and ``v`` ``(layers, n, heads, seq_len - 1, d_model / heads)`` and ``valid``
    ``(n, seq_len - 1)`` (1.0 where the cached row exists)."""

    state_names = ("k", "v", "valid")
    state_batch_axes = (1, 1, 0)

    def __init__(self, n_features: int, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.norm = Standardise(n_features, cfg.clip)
        self.proj = nn.Linear(n_features, cfg.hidden)
        self.rel_bias = nn.Parameter(torch.zeros(cfg.heads, cfg.seq_len))  # by distance 0..seq_len-1
        self.blocks = nn.ModuleList([_CausalLayer(cfg) for _ in range(cfg.layers)])
        self.lnf = nn.LayerNorm(cfg.hidden)
        self.head = nn.Linear(cfg.hidden, N_CLASSES)

    def init_state(self, n: int) -> tuple[torch.Tensor, ...]:
        cfg = self.cfg
        k = torch.zeros((cfg.layers, n, cfg.heads, cfg.seq_len - 1, cfg.hidden // cfg.heads))
        return k, k.clone(), torch.zeros((n, cfg.seq_len - 1))

    def forward(
        self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        n, b = x.shape[0], x.shape[1]
        c = self.cfg.seq_len - 1
        # query i (block row) may see key j (cache rows, then block rows) when 0 <= i + c - j <= c
        dist = torch.arange(b).unsqueeze(1) + c - torch.arange(c + b).unsqueeze(0)  # (b, c + b)
        allowed = (dist >= 0) & (dist <= c)
        keyvalid = torch.cat([valid, torch.ones((n, b), dtype=valid.dtype)], dim=1) > 0.5  # (n, c + b)
        ok = allowed.unsqueeze(0) & keyvalid.unsqueeze(1)  # (n, b, c + b)
        mask = torch.where(ok, torch.zeros((), dtype=x.dtype), torch.full((), -1e9, dtype=x.dtype))
        bias = self.rel_bias[:, dist.clamp(0, c)].unsqueeze(0) + mask.unsqueeze(1)  # (n, heads, b, c+b)
        h = self.proj(self.norm(x))
        ks, vs = [], []
        for i, blk in enumerate(self.blocks):
            h, k1, v1 = blk(h, k[i], v[i], bias)
            ks.append(k1)
            vs.append(v1)
        valid1 = torch.cat([valid, torch.ones((n, b), dtype=valid.dtype)], dim=1)[:, b:]
        return self.head(self.lnf(h)), torch.stack(ks), torch.stack(vs), valid1


class CNNNet(nn.Module):
    """Causal dilated convolutions; state ``buf`` ``(n, receptive_field - 1, f)`` (standardised rows)."""

    state_names = ("buf",)
    state_batch_axes = (0,)

    def __init__(self, n_features: int, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_features = n_features
        self.norm = Standardise(n_features, cfg.clip)
        convs: list[nn.Module] = []
        c_in = n_features
        for c, k, d in zip(cfg.channels, cfg.kernel_sizes, cfg.dilations, strict=True):
            convs += [nn.Conv1d(c_in, c, k, dilation=d), nn.LeakyReLU(0.01)]
            c_in = c
        self.convs = nn.Sequential(*convs)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(c_in, N_CLASSES)

    def init_state(self, n: int) -> tuple[torch.Tensor, ...]:
        return (torch.zeros((n, self.cfg.receptive_field - 1, self.n_features)),)

    def forward(self, x: torch.Tensor, buf: torch.Tensor) -> tuple[torch.Tensor, ...]:
        seq = torch.cat([buf, self.norm(x)], dim=1)  # (n, rf - 1 + b, f)
        h = self.convs(seq.transpose(1, 2)).transpose(1, 2)  # valid convolutions: (n, b, c)
        return self.head(self.drop(h)), seq[:, x.shape[1] :, :]


class WithSoftmax(nn.Module):
    """Wraps a logits network so its first output is class probabilities (what ONNX exports)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, *new_state = self.net(x, *state)
        return (torch.softmax(logits, dim=-1), *new_state)


def build_net(cfg: NetConfig, n_features: int) -> nn.Module:
    """The untrained logits network of ``cfg.kind`` for ``n_features`` inputs per row."""
    if n_features < 1:
        raise ValueError(f"build_net: n_features must be >= 1, got {n_features}")
    cls = {"lstm": LSTMNet, "transformer": TransformerNet, "cnn": CNNNet}[cfg.kind]
    return cls(n_features, cfg)


def feature_groups(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Map each feature name to its registry group (default FeatureConfig names, futures on/off).

    Raises ``ValueError`` naming the features the registry does not know (e.g. a dataset built with
    non-default windows: pass ``NetConfig.features`` explicitly then).
    """
    from orderflow.features.config import FeatureConfig
    from orderflow.features.registry import default_specs

    known = {s.name: s.group for s in default_specs(FeatureConfig(tick_size=1.0))}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"feature_groups: {len(unknown)} feature(s) not in the default registry, e.g. "
            f"{unknown[:5]}; set NetConfig.features explicitly"
        )
    return {n: known[n] for n in names}


def select_features(cfg: NetConfig, names: list[str]) -> list[str]:
    """The dataset columns ``cfg`` reads, in dataset order."""
    if cfg.features is not None:
        missing = [f for f in cfg.features if f not in names]
        if missing:
            raise ValueError(f"NetConfig.features: not in the dataset: {missing[:5]}")
        wanted = set(cfg.features)
        return [n for n in names if n in wanted]
    groups = feature_groups(names)
    bad = set(cfg.groups) - {"ofi", "cvd", "micro", "technical", "time", "regime"}
    if bad:
        raise ValueError(f"NetConfig.groups: unknown group(s) {sorted(bad)}")
    out = [n for n in names if groups[n] in cfg.groups]
    if not out:
        raise ValueError(f"NetConfig.groups={cfg.groups}: no dataset feature belongs to them")
    return out
