"""One router per file: `predict` (the model) and `ops` (health, readiness, metrics)."""
