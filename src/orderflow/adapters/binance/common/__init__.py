"""What the market-data and trading sides share: errors, signing, credentials, endpoints, config."""
