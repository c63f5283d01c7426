"""Engine telemetry: the versioned event schema and the transports that carry it to readers."""
