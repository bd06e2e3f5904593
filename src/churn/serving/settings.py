"""Runtime settings of the service, from ``CHURN_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_API_KEY_LENGTH = 16


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

    @field_validator("api_key")
    @classmethod
    def _api_key_strong_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_API_KEY_LENGTH:
            raise ValueError(f"CHURN_API_KEY must be at least {MIN_API_KEY_LENGTH} characters")
        return value

    @field_validator("model_uri")
    @classmethod
    def _registry_uri(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("models:/") and "@" in value):
            raise ValueError("CHURN_MODEL_URI must look like models:/<name>@<alias>")
        return value
