"""The Binance adapter (spot and USD-M futures): wire decoding, local-book sync, market-data REST and the
live feed, the signed trading client and user data stream, and the loopback replay server.

``common/`` holds what both sides share (errors, signing, credentials, endpoints, config, server clock),
``http/`` the REST transport and rate limiter, ``trading/`` the order and account payloads.
"""
