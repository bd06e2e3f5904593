"""Runtime settings of the service, from ``CHURN_*`` environment variables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from churn.core.artifacts import parse_model_uri

MIN_API_KEY_LENGTH = 16
SHA256 = re.compile(r"[0-9a-f]{64}")
S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHURN_", frozen=True, extra="ignore")

    model_dir: Path = Field(
        default=Path("models"),
        description="Directory with model.onnx and model_card.json (the pipeline's models/).",
    )
    model_uri: str | None = Field(
        default=None,
        description="Load from the MLflow registry instead: models:/churn-classifier@champion.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="If set, prediction routes require it in the X-API-Key header."
    )
    feedback_api_key: SecretStr | None = Field(
        default=None,
        description="If set, POST /feedback requires it in X-API-Key (never the prediction "
        "key). Unset while CHURN_API_KEY is set: /feedback is not mounted; both unset: open.",
    )
    info_api_key: SecretStr | None = Field(
        default=None,
        description="If set, /model, /metrics, /docs, /redoc and /openapi.json require it in "
        "X-API-Key (unset: they are open; /health and /ready always are).",
    )
    model_sha256: str | None = Field(
        default=None,
        description="Pin: the SHA-256 of the only ONNX file the service may load (at start-up, "
        "from /admin and from the registry alike); unset: no pin.",
    )
    max_batch_size: int = Field(default=1000, ge=1, le=100_000)
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="Larger bodies get 413.")

    # The prediction log (docs/monitoring.md). Off unless a directory is set:
    # the container's root file system is read-only, and a log nobody asked
    # for would fill a disk nobody watches.
    prediction_log_dir: Path | None = Field(
        default=None,
        description="Write predictions and feedback here as JSON lines (unset or empty: off).",
    )
    prediction_log_s3_uri: str | None = Field(
        default=None,
        description="Also ship complete files to s3://bucket/prefix (needs boto3), then delete "
        "them locally; the directory is then the spool.",
    )
    prediction_log_flush_s: float = Field(
        default=1.0, gt=0, le=60, description="Write waiting records at least this often."
    )
    prediction_log_batch: int = Field(
        default=1000, ge=1, description="Write as soon as this many records are waiting."
    )
    prediction_log_buffer: int = Field(
        default=10_000,
        ge=1,
        description="Most records waiting in memory; more are dropped (and counted), not queued.",
    )
    prediction_log_rotate_bytes: int = Field(
        default=64 << 20, ge=1024, description="Start a new file after this many bytes."
    )
    prediction_log_rotate_s: float = Field(
        default=3600, ge=1, description="Start a new file after this many seconds."
    )
    prediction_log_gzip: bool = Field(default=False, description="Compress files (.jsonl.gz).")

    # Live drift (docs/monitoring.md): on when the model has a drift profile.
    drift_window: int = Field(
        default=5000,
        ge=10,
        le=1_000_000,
        description="Compare the last this many records (up to a tenth more) with the "
        "training data.",
    )
    drift_min_samples: int = Field(
        default=500, ge=1, description="No drift verdict until the window holds this many."
    )
    drift_interval_s: float = Field(
        default=10,
        gt=0,
        le=3600,
        description="Recompute the drift metrics at most this often, when /metrics is read.",
    )

    # Rollouts (docs/rollouts.md): a standby model beside the active one, which
    # an A/B test or shadow mode can send traffic to. Admin routes are off
    # unless asked for: they change what the service answers with.
    challenger_model_dir: Path | None = Field(
        default=None,
        description="Load this model directory into the standby slot at start-up, as the "
        "candidate (unset: no standby until POST /admin/models/standby).",
    )
    challenger_model_uri: str | None = Field(
        default=None,
        description="Or load the candidate from the MLflow registry: "
        "models:/churn-classifier@challenger.",
    )
    ab_challenger_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of records (by a hash of their id) the candidate answers; "
        "0: no A/B test.",
    )
    ab_salt: str = Field(
        default="",
        max_length=256,
        description="Salt of the id-to-variant hash; a new salt reshuffles records "
        "for a new experiment.",
    )
    shadow: bool = Field(
        default=False,
        description="The candidate also scores the records the champion answers; its "
        "scores are logged, never returned.",
    )
    admin_enabled: bool = Field(
        default=False,
        description="Mount /admin (load a model into the standby slot, switch, roll back).",
    )
    admin_api_key: SecretStr | None = Field(
        default=None,
        description="The key /admin requires in X-API-Key; required with CHURN_ADMIN_ENABLED "
        "(no fallback to CHURN_API_KEY).",
    )
    admin_models_root: Path | None = Field(
        default=None,
        description="POST /admin/models/standby loads model directories only from under this "
        "directory (unset: the parent of CHURN_MODEL_DIR).",
    )
    admin_load_timeout_s: float = Field(
        default=60,
        gt=0,
        le=3600,
        description="A model load from /admin that takes longer is abandoned (the slots stay).",
    )

    @field_validator("api_key")
    @classmethod
    def _api_key_strong_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_API_KEY_LENGTH:
            raise ValueError(f"CHURN_API_KEY must be at least {MIN_API_KEY_LENGTH} characters")
        return value

    @field_validator("admin_api_key", "feedback_api_key", "info_api_key")
    @classmethod
    def _role_key_strong_enough(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_API_KEY_LENGTH:
            variable = f"CHURN_{(info.field_name or '').upper()}"
            raise ValueError(f"{variable} must be at least {MIN_API_KEY_LENGTH} characters")
        return value

    @field_validator(
        "admin_api_key",
        "feedback_api_key",
        "info_api_key",
        "model_sha256",
        "admin_models_root",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("model_sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if not SHA256.fullmatch(value):
            raise ValueError("CHURN_MODEL_SHA256 must be 64 hexadecimal digits (a SHA-256)")
        return value

    @model_validator(mode="after")
    def _keys_by_role(self) -> Self:
        if self.admin_enabled and self.admin_api_key is None:
            raise ValueError(
                "CHURN_ADMIN_ENABLED needs CHURN_ADMIN_API_KEY (its own key: /admin never "
                "falls back to CHURN_API_KEY)"
            )
        keys = {
            "CHURN_API_KEY": self.api_key,
            "CHURN_ADMIN_API_KEY": self.admin_api_key,
            "CHURN_FEEDBACK_API_KEY": self.feedback_api_key,
        }
        seen: dict[str, str] = {}
        for name, key in keys.items():
            if key is None:
                continue
            if (other := seen.get(key.get_secret_value())) is not None:
                raise ValueError(f"{name} must differ from {other} (one key per role)")
            seen[key.get_secret_value()] = name
        return self

    @field_validator("challenger_model_dir", "challenger_model_uri", mode="before")
    @classmethod
    def _empty_challenger_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("prediction_log_dir", "prediction_log_s3_uri", mode="before")
    @classmethod
    def _empty_is_off(cls, value: Any) -> Any:
        # CHURN_PREDICTION_LOG_DIR= would otherwise be Path(""), the working directory.
        return None if value == "" else value

    @field_validator("prediction_log_s3_uri")
    @classmethod
    def _s3_uri(cls, value: str | None) -> str | None:
        if value is not None and not S3_URI.match(value):
            raise ValueError("CHURN_PREDICTION_LOG_S3_URI must look like s3://<bucket>[/<prefix>]")
        return value

    @model_validator(mode="after")
    def _prediction_log_consistent(self) -> Self:
        if self.prediction_log_s3_uri is not None and self.prediction_log_dir is None:
            raise ValueError(
                "CHURN_PREDICTION_LOG_S3_URI needs CHURN_PREDICTION_LOG_DIR (the local spool "
                "files are written to before they are shipped)"
            )
        if self.prediction_log_batch > self.prediction_log_buffer:
            raise ValueError(
                "CHURN_PREDICTION_LOG_BATCH must not exceed CHURN_PREDICTION_LOG_BUFFER"
            )
        return self

    @model_validator(mode="after")
    def _drift_window_can_reach_a_verdict(self) -> Self:
        if self.drift_min_samples > self.drift_window:
            raise ValueError("CHURN_DRIFT_MIN_SAMPLES must not exceed CHURN_DRIFT_WINDOW")
        return self

    @field_validator("model_uri", "challenger_model_uri")
    @classmethod
    def _registry_uri(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            try:
                parse_model_uri(value)
            except ValueError:
                variable = f"CHURN_{(info.field_name or '').upper()}"
                raise ValueError(f"{variable} must look like models:/<name>@<alias>") from None
        return value

    @model_validator(mode="after")
    def _one_challenger_source(self) -> Self:
        if self.challenger_model_dir is not None and self.challenger_model_uri is not None:
            raise ValueError(
                "set CHURN_CHALLENGER_MODEL_DIR or CHURN_CHALLENGER_MODEL_URI, not both"
            )
        return self

    @property
    def admin_key(self) -> SecretStr | None:
        """The key /admin requires: its own, never the prediction routes' one."""
        return self.admin_api_key

    @property
    def feedback_enabled(self) -> bool:
        """/feedback is mounted: the log is on, and it has its own key or no route has one."""
        if self.prediction_log_dir is None:
            return False
        return self.feedback_api_key is not None or self.api_key is None

    @property
    def models_root(self) -> Path:
        """The directory /admin may load model directories from (resolved)."""
        root = self.admin_models_root or self.model_dir.resolve().parent
        return root.resolve()
