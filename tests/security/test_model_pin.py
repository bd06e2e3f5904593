"""Model pinning and admin loading (issue 13).

A tampered ONNX file with a card that matches it loads everywhere unless the
service is told which model it may serve: ``CHURN_MODEL_SHA256`` refuses any
other at start-up, from ``/admin`` and from the registry alike. Admin loads
come only from ``CHURN_ADMIN_MODELS_ROOT``, time out, do not reveal the file
system, and never leave the slots changed. Real `churn serve` on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from churn.core.artifacts import CARD_FILE, ONNX_FILE, file_sha256
from churn.core.contract import Contract
from churn.serving import loader
from churn.serving.settings import ServingSettings
from tests.support.models import copy_model
from tests.support.servers import Server, serve_and_fail, start_server, stop_server

pytestmark = pytest.mark.security

ADMIN_KEY = "a" * 20
SLOW_CLIENT_S = 5  # a refused load answers well within this


def _rewrite_onnx(directory: Path, change: object) -> str:
    """Change the ONNX file with ``change(model)`` and make the card agree; the new hash."""
    import onnx

    path = directory / ONNX_FILE
    model = onnx.load_from_string(path.read_bytes())
    change(model)  # type: ignore[operator]
    path.write_bytes(model.SerializeToString())
    card = json.loads((directory / CARD_FILE).read_text())
    card["onnx_sha256"] = file_sha256(path)
    (directory / CARD_FILE).write_text(json.dumps(card))
    return str(card["onnx_sha256"])


def _tamper(model: object) -> None:
    """Same scores, other bytes: what an attacker with write access to the remote can do."""
    entry = model.metadata_props.add()  # type: ignore[attr-defined]
    entry.key, entry.value = "tampered", "yes"


def _external(model: object) -> None:
    """An initializer whose values are in another file (read relative to the model)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    tensor = numpy_helper.from_array(np.zeros(2, np.float32), "outside")
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    location = tensor.external_data.add()
    location.key, location.value = "location", "secret.bin"
    model.graph.initializer.append(tensor)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Models:
    original: Path
    pinned: str  # the original's ONNX hash, as the card on main records it
    root: Path  # CHURN_ADMIN_MODELS_ROOT
    tampered: Path  # under root: other bytes, matching card
    external: Path  # under root: external data, matching card
    same: Path  # under root: a copy of the original


@pytest.fixture(scope="module")
def models(small_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Models:
    pytest.importorskip("onnx")
    root = tmp_path_factory.mktemp("models-root")
    tampered = copy_model(small_model_dir, root / "tampered")
    _rewrite_onnx(tampered, _tamper)
    external = copy_model(small_model_dir, root / "external")
    _rewrite_onnx(external, _external)
    (external / "secret.bin").write_bytes(b"\0" * 8)
    fifo = root / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / CARD_FILE)
    (root / "escape").symlink_to(small_model_dir.parent)
    pinned = json.loads((small_model_dir / CARD_FILE).read_text())["onnx_sha256"]
    same = copy_model(small_model_dir, root / "same")
    return Models(small_model_dir, pinned, root, tampered, external, same)


def _refused(result_stderr: str, returncode: int, phrase: str) -> None:
    assert returncode == 2, result_stderr
    lines = result_stderr.strip().splitlines()
    assert len(lines) == 1 and phrase in lines[0], result_stderr


def test_a_pinned_service_refuses_any_other_model_at_start_up(models: Models) -> None:
    result = serve_and_fail(models.tampered, {"CHURN_MODEL_SHA256": models.pinned})
    _refused(result.stderr, result.returncode, "CHURN_MODEL_SHA256")
    bad = serve_and_fail(models.original, {"CHURN_MODEL_SHA256": "not-a-hash"})
    _refused(bad.stderr, bad.returncode, "CHURN_MODEL_SHA256")
    # Without the pin the tampered model would be served: the card agrees with it.
    server = start_server(models.tampered)
    try:
        with server.client() as client:
            assert client.get("/model").json()["sha256"] != models.pinned
    finally:
        stop_server(server)
    server = start_server(models.original, {"CHURN_MODEL_SHA256": models.pinned.upper()})
    try:
        with server.client() as client:
            assert client.get("/model").json()["sha256"] == models.pinned
    finally:
        stop_server(server)


def test_onnx_with_external_data_is_refused(models: Models) -> None:
    result = serve_and_fail(models.external)
    _refused(result.stderr, result.returncode, "external data")


def test_a_pinned_registry_load_refuses_another_model(
    models: Models, contract: Contract, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`CHURN_MODEL_URI`: the registry's bundle goes through the same check (no MLflow
    here: the download is replaced by the tampered directory)."""
    monkeypatch.setattr(loader, "_download", lambda uri, destination: (models.tampered, "7"))
    settings = ServingSettings(model_uri="models:/m@champion", model_sha256=models.pinned)
    with pytest.raises(loader.ModelPinError, match="CHURN_MODEL_SHA256"):
        loader.load(settings, contract)
    monkeypatch.setattr(loader, "_download", lambda uri, destination: (models.same, "7"))
    assert loader.load(settings, contract).sha256 == models.pinned


@pytest.fixture(scope="module")
def admin(models: Models) -> Iterator[Server]:
    env = {
        "CHURN_ADMIN_ENABLED": "true",
        "CHURN_ADMIN_API_KEY": ADMIN_KEY,
        "CHURN_ADMIN_MODELS_ROOT": str(models.root),
        "CHURN_MODEL_SHA256": models.pinned,
    }
    server = start_server(models.original, env)
    yield server
    stop_server(server)


def _load(server: Server, model_dir: str) -> tuple[int, str, float]:
    started = time.monotonic()
    with server.client(headers={"X-API-Key": ADMIN_KEY}) as client:
        response = client.post("/admin/models/standby", json={"model_dir": model_dir})
    return response.status_code, response.text, time.monotonic() - started


def _slots(server: Server) -> object:
    with server.client(headers={"X-API-Key": ADMIN_KEY}) as client:
        return client.get("/admin/models").json()


def test_admin_refuses_a_tampered_model_and_the_slots_stay(admin: Server, models: Models) -> None:
    before = _slots(admin)
    status, text, _ = _load(admin, "tampered")
    assert status == 409 and "CHURN_MODEL_SHA256" in text, text
    status, text, _ = _load(admin, "external")  # the pin is checked first
    assert status == 409 and "CHURN_MODEL_SHA256" in text, text
    assert _slots(admin) == before


def test_admin_loads_only_from_the_models_root_and_reveals_no_paths(
    admin: Server, models: Models
) -> None:
    before = _slots(admin)
    outside = [
        str(models.original),  # exists, outside the root
        str(models.original.parent / "nothing-here"),  # does not exist, outside
        "../" + models.original.name,
        "escape/" + models.original.name,  # a symlink out of the root
        "/etc",
    ]
    answers = set()
    for given in outside:
        status, text, _ = _load(admin, given)
        assert status == 422, (given, text)
        message = json.loads(text)["detail"][0]["message"]
        answers.add(message)
        assert "/" not in message.replace("(CHURN_ADMIN_MODELS_ROOT)", ""), message
    assert len(answers) == 1  # the same answer whatever exists out there
    status, text, _ = _load(admin, "nowhere")
    assert status == 422 and str(models.root) not in text and "not found" in text, text
    status, text, elapsed = _load(admin, "fifo")  # a FIFO as the card must not jam the load
    assert status == 422 and elapsed < SLOW_CLIENT_S, (text, elapsed)
    assert str(models.root) not in text
    assert _slots(admin) == before
    status, text, _ = _load(admin, "same")  # the pinned model itself loads
    assert status == 200, text
    assert json.loads(text)["standby"]["sha256"] == models.pinned


def _padded(model: object) -> None:
    """A model that takes a while to hash and parse (tens of megabytes): a slow load."""
    entry = model.metadata_props.add()  # type: ignore[attr-defined]
    entry.key, entry.value = "padding", "x" * (32 << 20)


def test_an_admin_load_that_takes_too_long_is_abandoned(models: Models) -> None:
    big = models.root / "big"
    if not big.exists():
        _rewrite_onnx(copy_model(models.original, big), _padded)
    env = {
        "CHURN_ADMIN_ENABLED": "true",
        "CHURN_ADMIN_API_KEY": ADMIN_KEY,
        "CHURN_ADMIN_MODELS_ROOT": str(models.root),
        "CHURN_ADMIN_LOAD_TIMEOUT_S": "0.001",
    }
    server = start_server(models.original, env)
    try:
        before = _slots(server)
        status, text, _ = _load(server, "big")
        assert status == 422 and "not loaded within" in text, text
        assert _slots(server) == before
    finally:
        started = time.monotonic()
        stop_server(server)
        assert time.monotonic() - started < SLOW_CLIENT_S  # nothing left holds up shutdown
