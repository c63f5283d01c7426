"""Level (b) of a search: a trial whose feature, label or model keys differ from the base rebuilds what
they change and reuses what they do not.

What a trial's out-of-sample probabilities depend on, stage by stage:

1. the feature matrix: the ``features`` config (rebuilt from the store by the caller's ``build``);
2. the labelled dataset: the features, the ``labels`` config and ``models.sample_every_s``;
3. the members fitted per walk-forward window: all of the above and the ``models`` config.

Stages 1 and 2 are kept in memory by the configs they read, the few most recent (a 24 h feature matrix
is about a gigabyte); a trial that changes only a model key reuses the base's features and dataset. The
probabilities of the search windows go to the same disk cache as level (a)'s, under the key of their
configs (:func:`orderflow.optimize.study.probability_key`), so a point seen before, by this process or
by any worker sharing the cache directory, trains nothing.

A trial whose probabilities are not cached trains window by window as its backtest reaches the window
(:class:`LazyEvalData`), so the pruner can stop a poor trial before it trains its later windows; the
windows trained so far stay in memory for the next trial with the same configs, and the entry is
written to the cache once every window is done. The search never sees the held-back period: the
features, labels and training are cut at its start exactly as for the base (:func:`search_part`).

On Ray (:mod:`orderflow.optimize.distributed`) a worker process rebuilds its own :class:`Recompute`
once from a :class:`RebuildSpec`: the base config, the models config, the study settings, the cache
directory and a *source* that reads the events and builds feature matrices from the store (a path
every node sees). The base's probabilities come from the cache the driver filled, and the workers
share the cache for the points they train.
"""

from __future__ import annotations

import json
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from orderflow.backtest.engine import Market
from orderflow.backtest.walkforward import WindowProbabilities, iter_window_probabilities
from orderflow.config import Config
from orderflow.core.instruments import Instrument
from orderflow.models.config import ModelsConfig
from orderflow.models.dataset import Dataset
from orderflow.models.train import labelled_dataset
from orderflow.optimize import cache as C
from orderflow.optimize.objective import EvalData
from orderflow.optimize.space import InvalidPoint, StudySettings, apply_values
from orderflow.optimize.study import Prepared, StudyError, prepare, probability_key, search_part

Inputs = tuple[pd.DataFrame, Dataset, np.ndarray | None, ModelsConfig]


class LazyEvalData(EvalData):
    """The search data of one level (b) point, its windows trained as the backtest asks for them."""

    def __init__(
        self,
        market: Market,
        features: pd.DataFrame,
        produce: Iterator[WindowProbabilities],
        n_spans: int,
        prepared: Prepared,
        on_complete: Callable[[list[WindowProbabilities]], None],
        keep_alive: Any = None,
    ) -> None:
        super().__init__([], [], [], prepared.search.instrument, prepared.holdout_start,
                         prepared.search.period_ns)  # fmt: skip
        self._market, self._frame, self._produce, self._n_spans = market, features, produce, n_spans
        self._on_complete, self._keep_alive = on_complete, keep_alive
        self.complete = False

    @property
    def n_windows(self) -> int:
        return len(self.windows) if self.complete else self._n_spans

    def _next(self) -> bool:
        """Train and add the next window; False when there is none."""
        try:
            w = next(self._produce)
        except StopIteration:
            self.complete = True
            self._keep_alive = None  # the windows' bundle directory
            if not self.windows:  # the trial fails with the reason; the study goes on
                raise InvalidPoint("every walk-forward window of this point was skipped (too few training "
                                   "samples)") from None  # fmt: skip
            self._on_complete(self.windows)
            return False
        one = EvalData.build(self._market, self._frame, [w], self.instrument, self.limit_ns, 1.0)
        self.windows.append(w)
        self.markets.append(one.markets[0])
        self.features.append(one.features[0])
        return True

    def items(self) -> Iterator[tuple[WindowProbabilities, Market, pd.DataFrame]]:
        k = 0
        while True:
            if k == len(self.windows) and (self.complete or not self._next()):
                return
            yield self.windows[k], self.markets[k], self.features[k]
            k += 1


class Source(Protocol):
    """Where a search's events and feature matrices come from (the CLI's store source; picklable, so
    a Ray worker can read the same store)."""

    def load(self) -> tuple[Market, pd.DataFrame, Instrument]:
        """The market events, the book's ``ts_event``, ``bid_px_1`` and ``ask_px_1``, the instrument."""
        ...

    def features(self, cfg: Config) -> pd.DataFrame:
        """The feature matrix of ``cfg.features`` over the whole span."""
        ...


@dataclass(frozen=True)
class RebuildSpec:
    """What a Ray worker needs to rebuild a level (b) search (module docstring)."""

    source: Source
    base: Config
    models: ModelsConfig
    settings: StudySettings
    cache_dir: Path | None


def rebuild(spec: RebuildSpec, say: Callable[[str], None] = lambda s: None) -> Recompute:
    """A worker's :class:`Recompute`: the events and base features from the source, the base's search
    windows from the cache (trained here if the driver's entry is missing)."""
    market, top, instrument = spec.source.load()
    features = spec.source.features(spec.base)
    ds, mid = labelled_dataset(features, top, spec.base.labels, spec.models.sample_every_s)
    prep = prepare(spec.base, spec.models, market, features, ds, mid, instrument, spec.settings,
                   spec.cache_dir, say)  # fmt: skip
    return Recompute(spec.base, prep, spec.source.features, top, spec.cache_dir, say, source=spec.source)


class Recompute:
    """Builds the inputs and the search data of a point's own feature, label and model configs.

    ``base`` is the config as given, ``prepared`` the base's prepared search (its models config is the
    one trials start from: ``--quick`` or not), ``build(cfg)`` the feature matrix of ``cfg.features``
    over the whole span, ``book`` the stored book's ``ts_event``, ``bid_px_1`` and ``ask_px_1`` (for
    the labels). ``keep`` feature matrices and datasets stay in memory besides the base's.
    """

    def __init__(
        self,
        base: Config,
        prepared: Prepared,
        build: Callable[[Config], pd.DataFrame],
        book: pd.DataFrame,
        cache_dir: Path | None,
        say: Callable[[str], None] = print,
        keep: int = 2,
        source: Source | None = None,
    ) -> None:
        self.given, self.source = base, source  # for a RebuildSpec (Ray)
        self.base = base.model_copy(update={"models": prepared._models})
        self.prepared, self.build, self.book, self.cache_dir, self.say = prepared, build, book, cache_dir, say
        self.keep = keep
        self._features: OrderedDict[str, pd.DataFrame] = OrderedDict()
        self._datasets: OrderedDict[str, tuple[Dataset, np.ndarray]] = OrderedDict()
        self._search: OrderedDict[str, EvalData] = OrderedDict()
        self._features[self._fkey(self.base)] = prepared._features
        self._datasets[self._dkey(self.base)] = (prepared._ds, prepared._mid)  # type: ignore[assignment]
        self.built = {"features": 0, "datasets": 0, "trainings": 0}

    @staticmethod
    def _fkey(cfg: Config) -> str:
        return json.dumps(cfg.features.model_dump(mode="json"), sort_keys=True)

    def _dkey(self, cfg: Config) -> str:
        labels = cfg.labels.model_dump(mode="json")
        return json.dumps([self._fkey(cfg), labels, cfg.models.sample_every_s], sort_keys=True)

    def _remember(self, memo: OrderedDict[str, Any], key: str, value: Any, base_key: str) -> None:
        memo[key] = value
        memo.move_to_end(key)
        while len(memo) > self.keep + 1:  # the base's entry is never dropped
            old = next(k for k in memo if k != base_key)
            del memo[old]

    def spec(self, settings: StudySettings) -> RebuildSpec:
        """What a Ray worker rebuilds this from; needs the ``source`` the caller gave."""
        if self.source is None:
            raise StudyError("level (b) on Ray needs the search's source (a store every node can read)")
        return RebuildSpec(self.source, self.given, self.prepared._models, settings, self.cache_dir)

    def config(self, values: dict[str, Any]) -> Config:
        """The base (with the search's models config) and the point's values."""
        return apply_values(self.base, values)

    def inputs(self, values: dict[str, Any]) -> Inputs:
        """The whole span's features, dataset, mid and models config of a point."""
        cfg = self.config(values)
        fk, dk = self._fkey(cfg), self._dkey(cfg)
        if fk not in self._features:
            self.built["features"] += 1
            self._remember(self._features, fk, self.build(cfg), self._fkey(self.base))
        self._features.move_to_end(fk)
        features = self._features[fk]
        if dk not in self._datasets:
            self.built["datasets"] += 1
            ds, mid = labelled_dataset(features, self.book, cfg.labels, cfg.models.sample_every_s)
            self._remember(self._datasets, dk, (ds, mid), self._dkey(self.base))
        ds, mid = self._datasets[dk]
        return features, ds, mid, cfg.models

    def search_data(self, values: dict[str, Any]) -> EvalData:
        """The search windows of a point: cached, being trained, or started now (module docstring)."""
        p = self.prepared
        cfg = self.config(values)
        features, ds, mid, models = self.inputs(values)
        part = search_part(p._market, features, ds, mid, p.holdout_start)
        key = probability_key(cfg, models, part.market, p.spans)
        if key == p.data_key:
            return p.search
        got = self._search.get(key)
        if got is not None:
            self._search.move_to_end(key)
            return got
        cached = C.load(self.cache_dir, key)
        if cached is not None:
            data: EvalData = EvalData.build(
                part.market, part.features, cached, p.search.instrument, p.holdout_start,
                p.search.period_ns / 60e9,
            )  # fmt: skip
        else:
            self.built["trainings"] += 1
            tmp = tempfile.TemporaryDirectory()
            produce = iter_window_probabilities(
                part.features, part.ds, models, Path(tmp.name), p.spans, cfg.walkforward, part.mid, self.say
            )
            data = LazyEvalData(
                part.market, part.features, produce, len(p.spans), p,
                lambda wps: C.store(self.cache_dir, key, wps), tmp,
            )  # fmt: skip
        self._remember(self._search, key, data, p.data_key)
        return data
