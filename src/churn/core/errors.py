"""The package's expected errors: each becomes one readable line and an exit code.

Kept free of imports so that every entry point, the service included, can
catch them without loading the training stack.
"""


class DataError(Exception):
    """A file that cannot be read as a table at all: missing, unreadable, empty."""


class ModelError(Exception):
    """A model directory that is missing, corrupt or does not match its card."""


class TrackingError(Exception):
    """The MLflow tracking store cannot be reached or refused a request."""


class RegistryError(TrackingError):
    """A registry operation cannot be done: no such model, version or alias, no history."""


class ValidationFailedError(Exception):
    """The data a stage would train on did not pass validation."""


class ServiceError(Exception):
    """A running prediction service failed a check (not ready, wrong model, bad answer)."""


class PredictionLogError(Exception):
    """The prediction log cannot be written (directory, S3 support) or read (corrupt line)."""


class ContractError(Exception):
    """The domain's data contract (or the domain room itself) is missing or malformed."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one readable line (its message's first line, or its type)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]
