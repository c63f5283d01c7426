"""The trading engine: the shared per-event core (``core``) and the drivers that feed it."""
