"""Runtime settings of the service, from ``CHURN_*`` environment variables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_API_KEY_LENGTH = 16
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

    @field_validator("api_key")
    @classmethod
    def _api_key_strong_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_API_KEY_LENGTH:
            raise ValueError(f"CHURN_API_KEY must be at least {MIN_API_KEY_LENGTH} characters")
        return value

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

    @field_validator("model_uri")
    @classmethod
    def _registry_uri(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("models:/") and "@" in value):
            raise ValueError("CHURN_MODEL_URI must look like models:/<name>@<alias>")
        return value
