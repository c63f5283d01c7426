"""Alerts: rules over the engines' telemetry, anomaly detection, delivery to channels, scheduled reports."""
