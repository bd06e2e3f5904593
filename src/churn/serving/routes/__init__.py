"""One router per file: `predict`, `feedback`, `ops` (health, metrics...), `admin` (model slots).

The first three depend on the domain's record model: each module's
`build_router(schemas)` builds its router for the `churn.serving.schemas.Schemas`
the app was made with. ``admin`` knows no records and is a plain module-level router.
"""
