"""Market data: sources (Binance, simulator, replay), the store, importers, recorder, quality checks."""
