"""The capability table: the facts the adapter used to write inline, checked against Binance's docs."""

from __future__ import annotations

import pytest

from orderflow.adapters.binance.common.venues import (
    BY_VENUE,
    SPOT,
    USDM,
    VENUES,
    caps,
    depth_continuity,
    venue_caps,
)


@pytest.mark.parametrize(
    ("limit", "spot", "usdm"),
    [(5, 5, 2), (50, 5, 2), (100, 5, 5), (500, 25, 10), (1000, 50, 20), (5000, 250, 20)],
)
def test_depth_weight_by_limit(limit: int, spot: int, usdm: int) -> None:
    # spot 5/25/50/250 for limit <=100/500/1000/5000; USD-M 2/5/10/20 for <=50/100/500/1000
    assert (SPOT.depth_weight(limit), USDM.depth_weight(limit)) == (spot, usdm)


@pytest.mark.parametrize(("limit", "usdm"), [(99, 1), (100, 2), (499, 2), (500, 5), (1000, 5), (1001, 10)])
def test_klines_weight_by_limit(limit: int, usdm: int) -> None:
    assert (SPOT.klines_weight(limit), USDM.klines_weight(limit)) == (2, usdm)


def test_markets_differ_where_binance_does() -> None:
    assert list(VENUES) == ["usdm", "spot"]  # the command line's order; USD-M is the default
    assert (SPOT.rest_prefix, USDM.rest_prefix) == ("/api/v3", "/fapi/v1")
    assert (SPOT.depth_continuity, USDM.depth_continuity) == ("U/u", "pu")
    assert (SPOT.user_stream, USDM.user_stream) == ("ws-api", "listen-key")
    assert (SPOT.paths.listen_key, USDM.paths.listen_key) == ("", "/fapi/v1/listenKey")
    assert not (SPOT.reduce_only or SPOT.positions or SPOT.funding or SPOT.split_routes)
    assert USDM.reduce_only and USDM.positions and USDM.funding and USDM.split_routes


def test_caps_treats_every_futures_market_as_usdm() -> None:
    # the replay server serves COIN-M recordings with the USD-M protocol
    assert caps("spot") is SPOT and caps("usdm") is USDM and caps("coinm") is USDM


def test_venue_names_find_the_same_facts() -> None:
    assert BY_VENUE == {"binance-usdm": USDM, "binance-spot": SPOT}
    assert venue_caps("binance-spot") is SPOT and venue_caps("binance-usdm") is USDM
    assert (SPOT.shorts, USDM.shorts) == (False, True)  # spot sells only what the account holds
    with pytest.raises(ValueError, match="unknown Binance venue 'sim'"):
        venue_caps("sim")


@pytest.mark.parametrize(
    ("venue", "rule"),
    [
        ("binance-spot", "U/u"),
        ("binance-usdm", "pu"),
        ("binance-coinm", "pu"),
        ("sim", "pu"),
        ("deribit", "pu"),
    ],
)
def test_depth_continuity_of_recorded_venues(venue: str, rule: str) -> None:
    # every venue but spot chains on pu, as the importer and the quality check always did
    assert depth_continuity(venue) == rule


@pytest.mark.parametrize("venue", [SPOT, USDM])
def test_published_rate_limits_agree_with_the_weight_budget(venue) -> None:
    from orderflow.adapters.binance.http.ratelimit import LimitRule, default_rules

    weight = [r for r in venue.rate_limits if r[:3] == ("REQUEST_WEIGHT", "MINUTE", 1)]
    assert weight == [("REQUEST_WEIGHT", "MINUTE", 1, venue.max_weight_per_minute)]
    assert default_rules(venue.futures) == [LimitRule(*r) for r in venue.rate_limits]
