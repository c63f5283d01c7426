"""Binance market-data adapter: wire decoding, local-book sync, the live feed, replay server."""
