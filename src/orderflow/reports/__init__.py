"""Period reports (daily, weekly, monthly, UTC) built from the journal."""
