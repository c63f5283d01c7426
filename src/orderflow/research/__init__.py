"""Research studies over stored market data (price impact of order flow, ...)."""

from orderflow.research.impact import impact_from_store, impact_study, render_impact

__all__ = ["impact_from_store", "impact_study", "render_impact"]
