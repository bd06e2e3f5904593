"""params.yaml loads into frozen, typed models; a typo or a bad value names its key."""

from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from churn.core.params import Params, ParamsError, load_params
from tests.support.params import deep_update, write_params


def test_repository_params_load(params: Params) -> None:
    assert 0 < params.prepare.test_size < 1
    assert params.train.estimator in {"logistic_regression", "hist_gradient_boosting"}
    assert params.gate, "params.yaml gates no metric"


def test_written_params_read_back_equal(params: Params, tmp_path: Path) -> None:
    assert load_params(write_params(params, tmp_path / "params.yaml")) == params


def _variant(params: Params, tmp_path: Path, edit: dict[str, Any]) -> Path:
    """params.yaml's values with ``edit`` merged in, written as YAML (unvalidated)."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(deep_update(params.model_dump(mode="json"), edit)))
    return path


def test_a_misspelled_key_fails_loudly(params: Params, tmp_path: Path) -> None:
    raw = params.model_dump(mode="json")
    raw["prepare"]["test_sise"] = raw["prepare"].pop("test_size")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=r"prepare\.test_sise: Extra inputs"):
        load_params(path)


def test_a_wrong_value_names_the_key(params: Params, tmp_path: Path) -> None:
    path = _variant(params, tmp_path, {"train": {"cv_folds": 1}})
    with pytest.raises(ParamsError, match=r"train\.cv_folds"):
        load_params(path)


def test_an_unknown_estimator_is_refused(params: Params, tmp_path: Path) -> None:
    path = _variant(params, tmp_path, {"train": {"estimator": "svm"}})
    with pytest.raises(ParamsError, match=r"train\.estimator"):
        load_params(path)


def test_a_gate_with_a_negative_regression_is_refused(params: Params, tmp_path: Path) -> None:
    metric = next(iter(params.gate))
    path = _variant(params, tmp_path, {"gate": {metric: {"max_regression": -0.1}}})
    with pytest.raises(ParamsError, match=rf"gate\.{metric}\.max_regression"):
        load_params(path)


def test_params_are_frozen(params: Params) -> None:
    with pytest.raises(pydantic.ValidationError):
        params.prepare.seed = 1  # type: ignore[misc]


def test_missing_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="No such file"):
        load_params(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("prepare: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
