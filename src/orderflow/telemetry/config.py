"""The ``monitor:`` section: where engines publish their telemetry and serve their metrics."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MonitorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    telemetry: str = Field(
        "default",
        description="where paper/live engines publish telemetry: 'default' (the telemetry folder of the user "
        "data dir, or $ORDERFLOW_TELEMETRY), a directory, a file:// or redis:// URL, or 'off'",
    )
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="serve Prometheus /metrics on metrics_host:port (0: any free port)"
    )
    metrics_host: str = Field("127.0.0.1", description="address of the metrics server (keep it on loopback)")
    reconcile_s: float = Field(
        30.0,
        ge=0,
        description="how often the engine compares its position with the exchange's and publishes "
        "the API's 429/418 counts (0: never)",
    )

    def telemetry_url(self) -> str | None:
        """The transport URL, or None when telemetry is off."""
        if self.telemetry == "off":
            return None
        if self.telemetry == "default":
            from orderflow.telemetry.bus import default_url

            return default_url()
        return self.telemetry
