from pathlib import Path

import pydantic
import pytest

from churn.params import ParamsError, load_params
from tests.conftest import REPO


def test_repository_params_load(tmp_path: Path) -> None:
    params = load_params(REPO / "params.yaml")
    assert 0 < params.prepare.test_size < 1
    assert params.train.estimator in {"logistic_regression", "hist_gradient_boosting"}
    assert params.gate["roc_auc"].limit > 0.5


def _write_variant(tmp_path: Path, old: str, new: str) -> Path:
    text = (REPO / "params.yaml").read_text()
    assert old in text
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_a_misspelled_key_fails_loudly(tmp_path: Path) -> None:
    path = _write_variant(tmp_path, "test_size:", "test_sise:")
    with pytest.raises(ParamsError, match=r"prepare\.test_sise: Extra inputs"):
        load_params(path)


def test_a_wrong_value_names_the_key(tmp_path: Path) -> None:
    path = _write_variant(tmp_path, "cv_folds: 5", "cv_folds: 1")
    with pytest.raises(ParamsError, match=r"train\.cv_folds"):
        load_params(path)


def test_an_unknown_estimator_is_refused(tmp_path: Path) -> None:
    path = _write_variant(tmp_path, "estimator: logistic_regression", "estimator: svm")
    with pytest.raises(ParamsError, match=r"train\.estimator"):
        load_params(path)


def test_params_are_frozen() -> None:
    params = load_params(REPO / "params.yaml")
    with pytest.raises(pydantic.ValidationError):
        params.prepare.seed = 1  # type: ignore[misc]


def test_missing_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="No such file"):
        load_params(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("prepare: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
