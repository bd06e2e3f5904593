"""An MLOps template for binary classification: the machinery (core, pipeline, registry,
monitoring, release, serving, cli) and the domain room (domain/), this fork's data contract."""
