"""Trading payloads: order and account events, exchange filters, the signed client, the order tracker."""
