"""One router per file: `predict`, `feedback`, `ops` (health, metrics...), `admin` (model slots)."""
