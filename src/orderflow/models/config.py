"""Settings of the models package (``models:`` section, defaults in ``config/models.yaml``): the
members and their hyperparameters, the Hedge ensemble, the golden promotion rule and the walk-forward
evaluation of ``orderflow models train|evaluate|promote``.

Pydantic models only: the aggregate configuration validates the section at start-up (unknown keys
are errors naming the key and the file) without loading torch, scikit-learn, LightGBM, gymnasium or
MLflow; the code they configure is in ``expert``, ``nets``, ``rl``, ``ensemble`` and ``train``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orderflow.models.registry import GoldenRule

Kind = Literal["lstm", "transformer", "cnn"]
NET_KINDS: tuple[Kind, ...] = ("lstm", "transformer", "cnn")
NON_TECHNICAL = ("ofi", "cvd", "micro", "time", "regime")
DEFAULT_MEMBERS = ("expert_rf", "expert_lgbm", "lstm", "transformer", "cnn")
ALL_MEMBERS = (*DEFAULT_MEMBERS, "ppo")  # ppo: the RL policy as a member (needs the mid of every row)


class ExpertConfig(BaseModel):
    """Hyperparameters of the OFI expert (random forest + LightGBM)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: tuple[str, ...] = Field(("ofi", "cvd"), description="registry feature groups read")
    rf_n_estimators: int = Field(200, ge=1)
    rf_max_depth: int | None = Field(12, ge=1)
    rf_min_samples_leaf: int = Field(20, ge=1)
    rf_max_features: float = Field(0.3, gt=0, le=1, description="share of features per split")
    lgbm_n_estimators: int = Field(300, ge=1, description="boosting rounds (upper bound)")
    lgbm_learning_rate: float = Field(0.05, gt=0)
    lgbm_num_leaves: int = Field(15, ge=2)
    lgbm_min_child_samples: int = Field(50, ge=1)
    lgbm_subsample: float = Field(0.8, gt=0, le=1)
    lgbm_colsample: float = Field(0.8, gt=0, le=1)
    lgbm_reg_lambda: float = Field(1.0, ge=0)
    early_stopping_rounds: int = Field(30, ge=0, description="on the validation fold; 0 = off")
    seed: int = 0
    n_jobs: int = Field(1, ge=1)

    @classmethod
    def quick(cls) -> ExpertConfig:
        """A small configuration for tests and ``--quick`` runs (seconds)."""
        return cls(rf_n_estimators=30, rf_max_depth=8, lgbm_n_estimators=60, early_stopping_rounds=10)


class NetConfig(BaseModel):
    """One sequence network and how it is trained (defaults: the full sizes of config/models.yaml;
    ``--quick`` uses smaller ones)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    seq_len: int = Field(
        64, ge=2, description="rows: attention window (transformer), truncated-BPTT length (all kinds)"
    )
    hidden: int = Field(128, ge=1, description="LSTM hidden units / Transformer d_model")
    layers: int = Field(3, ge=1, description="LSTM or Transformer layers")
    heads: int = Field(8, ge=1, description="Transformer attention heads (must divide hidden)")
    ff_mult: int = Field(2, ge=1, description="Transformer feed-forward width = ff_mult * hidden")
    channels: tuple[int, ...] = Field((64, 128, 256), description="CNN conv channels, one per layer")
    kernel_sizes: tuple[int, ...] = Field((4, 4, 4), description="CNN kernel sizes, per layer")
    dilations: tuple[int, ...] = Field((1, 4, 16), description="CNN dilations, per layer")
    dropout: float = Field(0.1, ge=0, lt=1)
    clip: float = Field(10.0, gt=0, description="standardised inputs are clipped to +-clip")
    epochs: int = Field(8, ge=1, description="maximum training epochs")
    streams: int = Field(32, ge=1, description="stream pieces trained in parallel (the batch)")
    piece_len: int = Field(1024, ge=2, description="rows per training piece (state starts at zero)")
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
    context_rows: int = Field(
        1024, ge=0, description="LSTM only: rows streamed before the first scored row (warm-up)"
    )
    infer_block: int | None = Field(
        None, ge=1, description="rows per ONNX call in batch inference (None: 32 transformer, else 256)"
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
            if min(self.kernel_sizes) < 1 or min(self.dilations) < 1:
                raise ValueError("NetConfig: CNN kernel_sizes and dilations must be >= 1")
        return self

    @property
    def receptive_field(self) -> int:
        """Rows the output at one row depends on (LSTM: unbounded, reported as ``context_rows + 1``)."""
        if self.kind == "cnn":
            return 1 + sum((k - 1) * d for k, d in zip(self.kernel_sizes, self.dilations, strict=True))
        if self.kind == "transformer":
            return self.layers * (self.seq_len - 1) + 1
        return self.context_rows + 1

    @property
    def block(self) -> int:
        """Rows per ONNX call in batch inference (measured best on this CPU: attention cost grows with
        the block, recurrent and convolution cost falls)."""
        if self.infer_block is not None:
            return self.infer_block
        return 32 if self.kind == "transformer" else 256

    @property
    def warmup_rows(self) -> int:
        """Rows at the start of a training piece that carry no loss (the state is still filling)."""
        if self.kind == "lstm":
            return self.seq_len
        return self.receptive_field - 1

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
            kernel_sizes=(4, 4),
            dilations=(1, 4),
            dropout=0.0,
            epochs=8,
            streams=8,
            piece_len=256,
            lr=3e-3,
            patience=3,
            max_train_samples=4000,
            context_rows=128,
        )
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]


class RLConfig(BaseModel):
    """PPO policy and environment parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: Literal["PPO"] = "PPO"
    total_timesteps: int = Field(200_000, ge=1)
    episode_len: int | None = Field(2048, ge=2, description="steps per episode; None = whole series")
    fees_bps: float = Field(5.0, ge=0, description="taker fee per unit of turnover, bps")
    slippage_bps: float = Field(1.0, ge=0, description="half spread per unit of turnover, bps")
    impact_bps: float = Field(0.0, ge=0, description="k: extra bps per unit turnover per unit traded size")
    seed: int = 0
    n_steps: int = Field(2048, ge=8, description="PPO rollout length")
    batch_size: int = Field(64, ge=2)
    n_epochs: int = Field(10, ge=1)
    learning_rate: float = Field(3e-4, gt=0)
    gamma: float = Field(0.99, gt=0, le=1)
    ent_coef: float = Field(0.0, ge=0)
    net_arch: tuple[int, ...] = (64, 64)
    obs_clip: float = Field(10.0, gt=0, description="standardised features are clipped to ±obs_clip")
    torch_threads: int = Field(
        1, ge=1, description="torch threads while training (1 is fastest for small MLPs)"
    )

    @classmethod
    def quick(cls, **overrides: Any) -> RLConfig:
        """A small configuration for tests and smoke runs (seconds on one core)."""
        base: dict[str, Any] = dict(
            total_timesteps=6144, episode_len=512, n_steps=512, batch_size=128, n_epochs=4,
            learning_rate=1e-3, gamma=0.9, net_arch=(32, 32),
        )  # fmt: skip
        return cls(**{**base, **overrides})


class EnsembleConfig(BaseModel):
    """Hedge ensemble parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eta: float = Field(0.5, gt=0, description="Hedge learning rate (per unit of log loss)")
    floor: float = Field(0.05, ge=0, lt=1, description="minimum weight per member")
    cap: float = Field(0.6, gt=0, le=1, description="maximum weight per member")
    halflife: float = Field(200.0, gt=0, description="half-life of past losses, in labelled samples")
    stacking: bool = Field(False, description="use the stacking meta-model once it is fitted")
    stacking_c: float = Field(1.0, gt=0, description="inverse L2 strength of the stacking regression")


class ModelsConfig(BaseModel):
    """What `orderflow models train` trains and how it is evaluated (config/models.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    members: tuple[str, ...] = Field(
        DEFAULT_MEMBERS, description=f"members of the ensemble, from {', '.join(ALL_MEMBERS)}"
    )
    expert: ExpertConfig = ExpertConfig()
    lstm: NetConfig = NetConfig(kind="lstm")
    transformer: NetConfig = NetConfig(kind="transformer")
    cnn: NetConfig = NetConfig(kind="cnn")
    rl: RLConfig = RLConfig()
    ensemble: EnsembleConfig = EnsembleConfig()
    rule: GoldenRule = GoldenRule()
    n_folds: int = Field(4, ge=1, description="walk-forward test folds")
    embargo_s: float = Field(60.0, ge=0, description="embargo after each test fold (purged k-fold)")
    sample_every_s: float = Field(1.0, ge=0, description="at most one sample per this many seconds")
    val_frac: float = Field(0.2, gt=0, lt=1, description="share of training samples for validation")
    model_name: str = Field("orderflow-ensemble", description="registered model name")

    @model_validator(mode="before")
    @classmethod
    def _kind_from_section(cls, data: Any) -> Any:
        """``lstm:``, ``transformer:`` and ``cnn:`` name their network's kind: a file or environment
        variable that sets some of their keys (each is validated alone) need not repeat ``kind``."""
        if not isinstance(data, dict):
            return data
        nets = {k: {"kind": k, **data[k]} for k in NET_KINDS if isinstance(data.get(k), dict)}
        return {**data, **nets}

    def quick(self) -> ModelsConfig:
        """Small configurations of every member (smoke runs and tests: well under a minute)."""
        return self.model_copy(
            update={
                "expert": ExpertConfig.quick(),
                "lstm": NetConfig.quick("lstm", epochs=3),
                "transformer": NetConfig.quick("transformer", epochs=3),
                "cnn": NetConfig.quick("cnn", epochs=3),
                "rl": RLConfig.quick(),
                "n_folds": min(self.n_folds, 3),
            }
        )
