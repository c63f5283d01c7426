"""The REST transport and the request-weight / order-count rate limiter."""
