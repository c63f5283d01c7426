"""PyTorch sequence networks (LSTM, Transformer encoder, CNN) and their configuration.

Every network reads a window ``x`` of shape ``(n, seq_len, n_features)`` (raw float32 feature rows,
oldest first, the newest row last) and returns class logits ``(n, 3)`` for the classes (-1, 0, +1).
The first layer of each network is :class:`Standardise`: ``(x - mean) / std`` with ``mean``/``std``
buffers fitted on the training rows only, then NaN -> 0 and a clip to ``±cfg.clip``; because it is part
of the module, the exported ONNX graph does exactly the same.

- ``lstm``: ``layers`` stacked LSTM layers of ``hidden`` units; the last step's output -> linear head.
- ``transformer``: linear projection to ``d_model = hidden`` plus a learned position embedding, then
  ``layers`` pre-norm encoder layers (``heads`` heads, feed-forward ``ff_mult * hidden``, GELU),
  a final LayerNorm; the last position's vector -> linear head (the last row is the decision time).
- ``cnn``: 1-D temporal convolutions in the DeepLOB spirit, with the features as input channels (the
  feature vector is heterogeneous, not a spatial price-level grid, so convolving across it would be
  meaningless): ``channels`` = (64, 128, 256) with ``kernel_sizes`` (5, 5, 3) and ``dilations``
  (1, 2, 4) (receptive field 21 rows), "same" padding, LeakyReLU, then global average and max pooling
  over time concatenated with the last step's activations -> linear head.

:class:`~orderflow.models.nets_train.NetMember` trains these and exports them.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

Kind = Literal["lstm", "transformer", "cnn"]
N_CLASSES = 3
NON_TECHNICAL = ("ofi", "cvd", "micro", "time", "regime")


class NetConfig(BaseModel):
    """One sequence network and how it is trained (defaults: the issue's sizes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    seq_len: int = Field(64, ge=1, description="rows per input window (the newest row last)")
    hidden: int = Field(128, ge=1, description="LSTM hidden units / Transformer d_model")
    layers: int = Field(3, ge=1, description="LSTM or Transformer encoder layers")
    heads: int = Field(8, ge=1, description="Transformer attention heads (must divide hidden)")
    ff_mult: int = Field(2, ge=1, description="Transformer feed-forward width = ff_mult * hidden")
    channels: tuple[int, ...] = Field((64, 128, 256), description="CNN conv channels, one per layer")
    kernel_sizes: tuple[int, ...] = Field((5, 5, 3), description="CNN kernel sizes (odd), per layer")
    dilations: tuple[int, ...] = Field((1, 2, 4), description="CNN dilations, per layer")
    dropout: float = Field(0.1, ge=0, lt=1)
    clip: float = Field(10.0, gt=0, description="standardised inputs are clipped to +-clip")
    epochs: int = Field(8, ge=1, description="maximum training epochs")
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    grad_clip: float = Field(1.0, gt=0, description="max global gradient norm")
    patience: int = Field(3, ge=1, description="epochs without a better validation log loss")
    class_weighted: bool = Field(
        False, description="weight the cross entropy by inverse training class frequency"
    )
    seed: int = 0
    max_train_samples: int | None = Field(
        10_000, ge=1, description="train on at most this many of the most recent training samples"
    )
    threads: int = Field(1, ge=1, description="torch intra-op threads while fitting/predicting")
    groups: tuple[str, ...] = Field(NON_TECHNICAL, description="feature groups read (registry)")
    features: tuple[str, ...] | None = Field(None, description="explicit feature names (overrides groups)")

    @model_validator(mode="after")
    def _check(self) -> NetConfig:
        if self.kind == "transformer" and self.hidden % self.heads:
            raise ValueError(f"NetConfig: hidden={self.hidden} is not divisible by heads={self.heads}")
        if self.kind == "cnn":
            n = len(self.channels)
            if n == 0 or len(self.kernel_sizes) != n or len(self.dilations) != n:
                raise ValueError(
                    "NetConfig: channels, kernel_sizes and dilations need the same non-zero length"
                )
            if any(k % 2 == 0 for k in self.kernel_sizes):
                raise ValueError(f"NetConfig: CNN kernel_sizes must be odd, got {self.kernel_sizes}")
        return self

    @classmethod
    def quick(cls, kind: Kind, **overrides: object) -> NetConfig:
        """A tiny configuration that trains in a few seconds (smoke runs and tests)."""
        base: dict[str, object] = dict(
            kind=kind,
            seq_len=16,
            hidden=16,
            layers=1,
            heads=2,
            channels=(8, 16),
            kernel_sizes=(3, 3),
            dilations=(1, 2),
            dropout=0.0,
            epochs=8,
            batch_size=64,
            lr=3e-3,
            patience=3,
            max_train_samples=4000,
        )
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]


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
    """Stacked LSTM over the window; the last step's output feeds the head."""

    def __init__(self, n_features: int, cfg: NetConfig) -> None:
        super().__init__()
        self.norm = Standardise(n_features, cfg.clip)
        drop = cfg.dropout if cfg.layers > 1 else 0.0
        self.rnn = nn.LSTM(n_features, cfg.hidden, cfg.layers, batch_first=True, dropout=drop)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.norm(x))
        return self.head(self.drop(out[:, -1, :]))


class TransformerNet(nn.Module):
    """Pre-norm Transformer encoder; the last position (decision time) feeds the head."""

    def __init__(self, n_features: int, cfg: NetConfig) -> None:
        super().__init__()
        self.norm = Standardise(n_features, cfg.clip)
        self.proj = nn.Linear(n_features, cfg.hidden)
        self.pos = nn.Parameter(torch.zeros(1, cfg.seq_len, cfg.hidden))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.hidden,
            cfg.heads,
            dim_feedforward=cfg.ff_mult * cfg.hidden,
            dropout=cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, cfg.layers, enable_nested_tensor=False, norm=nn.LayerNorm(cfg.hidden)
        )
        self.head = nn.Linear(cfg.hidden, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.norm(x)) + self.pos[:, -x.shape[1] :, :]
        return self.head(self.encoder(h)[:, -1, :])


class CNNNet(nn.Module):
    """Dilated 1-D temporal convolutions with features as channels, pooled over time."""

    def __init__(self, n_features: int, cfg: NetConfig) -> None:
        super().__init__()
        self.norm = Standardise(n_features, cfg.clip)
        convs: list[nn.Module] = []
        c_in = n_features
        for c, k, d in zip(cfg.channels, cfg.kernel_sizes, cfg.dilations, strict=True):
            convs += [nn.Conv1d(c_in, c, k, padding=d * (k - 1) // 2, dilation=d), nn.LeakyReLU(0.01)]
            c_in = c
        self.convs = nn.Sequential(*convs)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(3 * c_in, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(self.norm(x).transpose(1, 2))  # (n, c, t)
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2), h[:, :, -1]], dim=1)
        return self.head(self.drop(pooled))


class WithSoftmax(nn.Module):
    """Wraps a logits network so its output is class probabilities (what ONNX exports)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=-1)


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
    from orderflow.features.engine import FeatureConfig
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
