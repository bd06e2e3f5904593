"""DVC's S3 remote (dvc-s3) against a real S3-compatible server (moto) on 127.0.0.1.

One copy of the project is reproduced once; each test pushes to its own bucket.
The remote is configured the documented way (`make s3-remote`, credentials in
`.dvc/config.local` or the environment, retries from the environment; see
docs/remotes.md). Faults are real ones: a closed port, a missing bucket, a
rejected key (moto with IAM authentication switched on), a server that accepts
connections and never answers, and a push killed while the network is down.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
import yaml

from churn.core.artifacts import ONNX_FILE
from tests.support.project import Repo, copy_project
from tests.support.servers import BIN, S3_CREDENTIALS, S3Server, free_port, start_s3_server

pytestmark = pytest.mark.integration

PREFIX = "dvc"  # the Makefile's S3_PREFIX
SECRET = f"local-secret-{uuid.uuid4().hex}"  # made here, so no file in Git holds it
# What docs/remotes.md recommends: botocore's standard retry mode, two attempts.
RETRIES = {"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "2"}
# A refused connection, a missing bucket or a rejected key: measured 2-3 s
# (DVC's own start-up included); the bound leaves room for a loaded machine.
FAIL_FAST_S = 30


# -- helpers ------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(root: Path, paths: list[Path]) -> dict[str, str]:
    """SHA-256 of every file at or below `paths`, keyed by path relative to `root`."""
    found = [p for path in paths for p in ([path] if path.is_file() else path.rglob("*"))]
    return {str(p.relative_to(root)): sha256(p) for p in found if p.is_file()}


def outputs(root: Path) -> dict[str, str]:
    """Every stage output recorded in `dvc.lock` (cached or in Git), file by file."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    paths = [root / out["path"] for stage in lock["stages"].values() for out in stage["outs"]]
    return files_under(root, paths)


def local_state(root: Path) -> dict[str, str]:
    """What a failed transfer must leave alone: the cache, the outputs and dvc.lock."""
    return outputs(root) | files_under(root, [root / ".dvc" / "cache", root / "dvc.lock"])


def cache_objects(root: Path) -> dict[str, int]:
    """The cache objects of the outputs in `dvc.lock`, which `dvc push` sends, with sizes.

    Keyed `ab/cdef…[.dir]` as in the remote. Outputs marked `cache: false` in
    dvc.yaml live in Git and are not pushed; nor are other objects in the cache.
    """
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    in_git = {
        path
        for stage in stages.values()
        for kind in ("outs", "metrics", "plots")
        for entry in stage.get(kind, [])
        if isinstance(entry, dict)
        for path, options in entry.items()
        if options.get("cache") is False
    }
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    outs = [out for stage in lock.values() for out in stage["outs"] if out["path"] not in in_git]
    store = root / ".dvc" / "cache" / "files" / "md5"
    names = {f"{out['md5'][:2]}/{out['md5'][2:]}" for out in outs}
    for name in [name for name in names if name.endswith(".dir")]:
        listing = json.loads((store / name).read_text())
        names |= {f"{entry['md5'][:2]}/{entry['md5'][2:]}" for entry in listing}
    return {name: (store / name).stat().st_size for name in names}


def expected_etags(objects: dict[str, int]) -> dict[str, str]:
    """An object's name is the MD5 of its content, and so is S3's ETag of a single PUT."""
    return {name: name.replace("/", "").removesuffix(".dir") for name in objects}


def s3_client(endpoint_url: str, **credentials: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=credentials.get("key", S3_CREDENTIALS["AWS_ACCESS_KEY_ID"]),
        aws_secret_access_key=credentials.get("secret", S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]),
    )


def remote_etags(endpoint_url: str, bucket: str, **credentials: str) -> dict[str, str]:
    """ETag of each object under the DVC prefix, keyed like `cache_objects`."""
    store = f"{PREFIX}/files/md5/"
    listed = s3_client(endpoint_url, **credentials).list_objects_v2(Bucket=bucket, Prefix=PREFIX)
    return {
        item["Key"].removeprefix(store): item["ETag"].strip('"')
        for item in listed.get("Contents", [])
    }


def add_remote(
    repo: Repo, name: str, url: str, endpoint_url: str, *options: tuple[str, str]
) -> None:
    """A remote in `.dvc/config.local` as `dvc remote add/modify --local` write it.

    One file write instead of starting DVC once per option (about a second each);
    the round-trip test configures its remote with the commands themselves.
    """
    lines = [f"['remote \"{name}\"']", f"    url = {url}", f"    endpointurl = {endpoint_url}"]
    lines += [f"    {key} = {value}" for key, value in options]
    with (repo.root / ".dvc" / "config.local").open("a") as config:
        config.write("\n".join(lines) + "\n")


def local_credentials(key: str = "testing", secret: str = SECRET) -> list[tuple[str, str]]:
    return [("access_key_id", key), ("secret_access_key", secret)]


def timed(
    command: Callable[..., subprocess.CompletedProcess[str]], *args: str, check: bool = True
) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = command(*args, check=check)
    return result, time.monotonic() - start


def pushed(count: int) -> str:
    """DVC's summary line of a push."""
    return f"{count} file pushed" if count == 1 else f"{count} files pushed"


def failure(result: subprocess.CompletedProcess[str]) -> str:
    """DVC's message for a command that must have failed."""
    assert result.returncode != 0, result.stdout
    return result.stdout + result.stderr


def clone(project: Repo, root: Path, **env: str) -> Repo:
    """A fresh clone: what Git holds and nothing else (no cache, no config.local)."""
    project.run("git", "clone", "--quiet", str(project.root), str(root))
    fresh = Repo(root, project.env | env)
    assert not (root / ".dvc" / "cache").exists()
    assert not (root / ".dvc" / "config.local").exists()
    return fresh


def assert_untouched(repo: Repo) -> None:
    """No file Git tracks was changed or deleted."""
    assert repo.run("git", "status", "--porcelain").stdout == ""


class Relay:
    """A TCP relay to a loopback port that goes silent after `budget` bytes from the client.

    Silent, not closed: connections stay open and nothing more crosses in either
    direction, as when the network drops every packet; new connections are
    accepted and stall too. `heal()` closes the stalled connections and relays
    everything from then on.
    """

    def __init__(self, target_port: int, budget: int) -> None:
        self._target_port = target_port
        self._budget: int | None = budget
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.stalled = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint_url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        _close(self._listener)
        self.heal()

    def heal(self) -> None:
        with self._lock:
            for sock in self._sockets:
                _close(sock)
            self._sockets.clear()
            self._budget = None
            self.stalled.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            upstream = socket.create_connection(("127.0.0.1", self._target_port))
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink, counted in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, sink, counted), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while chunk := source.recv(65536):
                with self._lock:
                    if counted and self._budget is not None:
                        self._budget -= len(chunk)
                        if self._budget < 0:
                            self.stalled.set()
                    if self.stalled.is_set():
                        return  # stop reading: both sockets stay open, nothing arrives
                sink.sendall(chunk)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            return  # closed by heal(), or by a peer


def _close(sock: socket.socket) -> None:
    """Shut down first: a plain close() does not wake a thread blocked on the socket."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def port_of(endpoint_url: str) -> int:
    return int(endpoint_url.rsplit(":", 1)[1])


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The project reproduced once and committed, with no AWS settings but the retries."""
    root = tmp_path_factory.mktemp("s3-project")
    repo = copy_project(root)
    repo.dvc("repro")
    repo.run("git", "add", "--all")
    repo.run("git", "commit", "--quiet", "--allow-empty", "--message", "repro")
    env = {
        key: value
        for key, value in repo.env.items()
        # No AWS settings of the machine, no variables of an outer `make`.
        if not key.startswith("AWS_") and key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    }
    env |= RETRIES | {
        "AWS_CONFIG_FILE": str(root / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return replace(repo, env=env)


@pytest.fixture(scope="module")
def iam_s3() -> Iterator[tuple[S3Server, dict[str, str]]]:
    """A moto server of its own that checks keys and signatures, and one user's key.

    moto accepts any key by default; with IAM authentication on (here through
    its `/moto-api/reset-auth` endpoint, once the user, its key, its policy and
    the bucket exist) it answers 403 to an unknown key or a wrong secret.
    """
    server = start_s3_server()
    try:
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="dvc")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="dvc", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="dvc")["AccessKey"]
        server.create_bucket("churn-wrong-key")
        httpx.post(f"{server.endpoint_url}/moto-api/reset-auth", content=b"0").raise_for_status()
        yield server, {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        server.stop()


# -- the round trip -----------------------------------------------------------------


def test_push_then_a_fresh_clone_pulls_everything_and_reruns_nothing(
    project: Repo, s3_server: S3Server, tmp_path: Path
) -> None:
    endpoint = s3_server.endpoint_url
    bucket = s3_server.create_bucket("churn-round-trip")
    project.run("make", "s3-remote", f"S3_BUCKET={bucket}", f"S3_ENDPOINT_URL={endpoint}")
    for key, value in local_credentials():
        project.dvc("remote", "modify", "--local", "s3", key, value)
    project.run("git", "commit", "--quiet", "--message", "S3 remote", ".dvc/config")
    config = project.dvc("config", "--list", "--project").stdout
    for line in (
        "core.remote=s3",
        f"remote.s3.url=s3://{bucket}/{PREFIX}",
        f"remote.s3.endpointurl={endpoint}",
        "remote.s3.connect_timeout=5",
        "remote.s3.read_timeout=15",
    ):
        assert line in config.splitlines()
    # The secret stays in .dvc/config.local, which Git ignores.
    committed = project.run("git", "grep", "--fixed-strings", SECRET, "HEAD", check=False)
    assert committed.returncode == 1, committed.stdout
    assert SECRET in (project.root / ".dvc" / "config.local").read_text()
    project.run("git", "check-ignore", "--quiet", ".dvc/config.local")

    objects = cache_objects(project.root)
    push, push_s = timed(project.dvc, "push")
    assert pushed(len(objects)) in push.stdout
    assert remote_etags(endpoint, bucket) == expected_etags(objects)
    assert "Cache and remote 's3' are in sync." in project.dvc("status", "--cloud").stdout
    assert "Everything is up to date." in project.dvc("push").stdout

    # A fresh clone, credentials from the environment, an empty cache.
    fresh = clone(project, tmp_path / "clone", **s3_server.env)
    pulled, pull_s = timed(fresh.dvc, "pull")
    assert f"{len(objects)} files fetched" in pulled.stdout
    assert cache_objects(fresh.root) == objects
    assert outputs(fresh.root) == outputs(project.root)
    repro = fresh.dvc("repro")
    assert "Running stage" not in repro.stdout
    assert "Data and pipelines are up to date." in repro.stdout
    assert "Cache and remote 's3' are in sync." in fresh.dvc("status", "--cloud").stdout
    assert_untouched(fresh)
    print(
        f"dvc push: {len(objects)} objects, {sum(objects.values()) / 1e6:.2f} MB "
        f"in {push_s:.1f} s; dvc pull into an empty cache: {pull_s:.1f} s"
    )


# -- a tampered remote ---------------------------------------------------------------


def model_objects(root: Path) -> dict[str, str]:
    """Remote key (under the DVC prefix) of each file in the model directory of `dvc.lock`."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    out = next(
        out for stage in lock.values() for out in stage["outs"] if out["md5"].endswith(".dir")
    )
    store = root / ".dvc" / "cache" / "files" / "md5"
    listing = json.loads((store / out["md5"][:2] / out["md5"][2:]).read_text())
    remote = f"{PREFIX}/files/md5"
    return {
        f"{out['path']}/{entry['relpath']}": f"{remote}/{entry['md5'][:2]}/{entry['md5'][2:]}"
        for entry in listing
    }


@pytest.mark.security
def test_a_tampered_remote_cannot_become_the_model_or_its_pin(
    project: Repo, s3_server: S3Server, tmp_path: Path
) -> None:
    """Someone with write access to the bucket swaps a model file (same key, other bytes).

    With ``verify = true`` (`make s3-remote`) DVC re-hashes what it pulls: the
    swapped object is refused and never checked out. And whatever brings a
    model into ``models/`` (a remote without verify, an old cache, a copy),
    `churn model-pin`, which the image build and the deploy run, refuses it
    unless its bytes are the ones `dvc.lock` in Git records."""
    endpoint = s3_server.endpoint_url
    bucket = s3_server.create_bucket("churn-tampered")
    project.run("make", "s3-remote", f"S3_BUCKET={bucket}", f"S3_ENDPOINT_URL={endpoint}")
    project.run("git", "commit", "--quiet", "--message", "S3 remote", ".dvc/config")
    for name, value in local_credentials():
        project.dvc("remote", "modify", "--local", "s3", name, value)
    project.dvc("push")
    # The served file: the ONNX model.
    tampered_path, key = next(
        (path, key) for path, key in model_objects(project.root).items() if path.endswith(ONNX_FILE)
    )
    original = (project.root / tampered_path).read_bytes()
    s3_client(endpoint).put_object(Bucket=bucket, Key=key, Body=original + b"\ntampered")

    fresh = clone(project, tmp_path / "clone", **s3_server.env)
    pulled = fresh.dvc("pull", check=False)
    assert pulled.returncode != 0, pulled.stdout
    on_disk = fresh.root / tampered_path
    assert not on_disk.exists() or on_disk.read_bytes() == original
    refused = fresh.run(str(BIN / "churn"), "model-pin", check=False)
    assert refused.returncode != 0

    # The pull DVC refused, done by hand: the tampered bytes in models/.
    project.run("cp", "-r", str(project.root / "models"), str(fresh.root))
    (fresh.root / tampered_path).write_bytes(original + b"\ntampered")
    refused = fresh.run(str(BIN / "churn"), "model-pin", check=False)
    assert refused.returncode == 1
    assert "is not the output of stage" in refused.stderr
    assert "tampered" in refused.stderr  # says what to suspect, in one line
    assert len(refused.stderr.strip().splitlines()) == 1

    (fresh.root / tampered_path).write_bytes(original)
    pinned = fresh.run(str(BIN / "churn"), "model-pin")
    card = json.loads((fresh.root / "models" / "model_card.json").read_text())
    assert pinned.stdout.strip() == card["onnx_sha256"]


# -- faults -------------------------------------------------------------------------


def test_server_down_fails_fast_naming_the_endpoint(project: Repo, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    url = f"s3://churn-server-down/{PREFIX}"
    cause = f'Could not connect to the endpoint URL: "{endpoint}/churn-server-down/{PREFIX}/'
    add_remote(project, "down", url, endpoint, *local_credentials())
    before = local_state(project.root)

    push, seconds = timed(project.dvc, "push", "--remote", "down", check=False)
    assert cause in failure(push)
    assert seconds < FAIL_FAST_S
    status = project.dvc("status", "--cloud", "--remote", "down", check=False)
    assert cause in failure(status)
    assert local_state(project.root) == before

    fresh = clone(project, tmp_path / "clone", **S3_CREDENTIALS)
    add_remote(fresh, "down", url, endpoint)
    pull, seconds = timed(fresh.dvc, "pull", "--remote", "down", check=False)
    assert cause in failure(pull)
    assert seconds < FAIL_FAST_S
    assert_untouched(fresh)


def test_missing_bucket_fails_fast_and_is_not_created(
    project: Repo, s3_server: S3Server, tmp_path: Path
) -> None:
    endpoint = s3_server.endpoint_url
    url = f"s3://churn-no-such-bucket/{PREFIX}"
    add_remote(project, "nobucket", url, endpoint, *local_credentials())
    before = local_state(project.root)

    push, seconds = timed(project.dvc, "push", "--remote", "nobucket", check=False)
    message = failure(push)
    assert "The specified bucket does not exist" in message
    assert "NoSuchBucket" in message
    assert seconds < FAIL_FAST_S
    assert local_state(project.root) == before
    buckets = s3_client(endpoint).list_buckets()["Buckets"]
    assert "churn-no-such-bucket" not in {bucket["Name"] for bucket in buckets}

    fresh = clone(project, tmp_path / "clone", **s3_server.env)
    add_remote(fresh, "nobucket", url, endpoint)
    pull, seconds = timed(fresh.dvc, "pull", "--remote", "nobucket", check=False)
    message = failure(pull)
    assert "The specified bucket does not exist" in message
    assert "NoSuchBucket" in message
    assert seconds < FAIL_FAST_S
    assert_untouched(fresh)


def test_rejected_key_is_refused_then_the_right_key_works(
    project: Repo, iam_s3: tuple[S3Server, dict[str, str]], tmp_path: Path
) -> None:
    server, user = iam_s3
    url = f"s3://churn-wrong-key/{PREFIX}"
    before = local_state(project.root)
    for remote, key, secret in (
        ("wrong-secret", user["key"], "wrong-secret"),
        ("unknown-key", "AKIAUNKNOWNKEY000000", user["secret"]),
    ):
        add_remote(project, remote, url, server.endpoint_url, *local_credentials(key, secret))
        push, seconds = timed(project.dvc, "push", "--remote", remote, check=False)
        message = failure(push)
        assert "Forbidden" in message
        assert "403" in message
        assert seconds < FAIL_FAST_S
        assert local_state(project.root) == before
    assert remote_etags(server.endpoint_url, "churn-wrong-key", **user) == {}

    # Credentials from the environment, in a fresh clone: same answer.
    wrong = {"AWS_ACCESS_KEY_ID": user["key"], "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
    fresh = clone(project, tmp_path / "clone", **wrong)
    add_remote(fresh, "iam", url, server.endpoint_url)
    pull, seconds = timed(fresh.dvc, "pull", "--remote", "iam", check=False)
    message = failure(pull)
    assert f"churn-wrong-key/{PREFIX}" in message
    assert "Forbidden" in message
    assert seconds < FAIL_FAST_S
    assert_untouched(fresh)

    # The control: the user's real key is accepted.
    add_remote(project, "iam", url, server.endpoint_url, *local_credentials(**user))
    objects = cache_objects(project.root)
    assert pushed(len(objects)) in project.dvc("push", "--remote", "iam").stdout
    assert remote_etags(server.endpoint_url, "churn-wrong-key", **user) == expected_etags(objects)


def test_a_server_that_never_answers_times_out(project: Repo, s3_server: S3Server) -> None:
    """The case retries make long: each request waits `read_timeout`, s3fs tries
    5 times and botocore AWS_MAX_ATTEMPTS times within each. With the defaults
    (15 s, 5 x 5) this push hangs for almost seven minutes (measured: 407 s)."""
    bucket = s3_server.create_bucket("churn-unresponsive")
    with Relay(port_of(s3_server.endpoint_url), budget=0) as silent:
        add_remote(
            project,
            "silent",
            f"s3://{bucket}/{PREFIX}",
            silent.endpoint_url,
            ("connect_timeout", "1"),
            ("read_timeout", "1"),
            *local_credentials(),
        )
        before = local_state(project.root)
        push, seconds = timed(project.dvc, "push", "--remote", "silent", check=False)
    cause = f'Read timeout on endpoint URL: "{silent.endpoint_url}/{bucket}/{PREFIX}/'
    assert cause in failure(push)
    assert seconds < 45
    print(f"dvc push against a server that never answers gave up after {seconds:.1f} s")
    assert local_state(project.root) == before
    assert remote_etags(s3_server.endpoint_url, bucket) == {}


def test_a_push_killed_midway_resumes_and_ends_in_sync(
    project: Repo, s3_server: S3Server, tmp_path: Path
) -> None:
    """The network goes silent partway through the upload and the push is killed
    (a cancelled CI job, a closed laptop); running it again finishes the job."""
    bucket = s3_server.create_bucket("churn-interrupted")
    objects = cache_objects(project.root)
    # Less than everything, more than the largest object: with one upload at a
    # time at least one object lands and at least one does not.
    budget = sum(objects.values()) - max(objects.values()) // 2
    with Relay(port_of(s3_server.endpoint_url), budget) as relay:
        url = f"s3://{bucket}/{PREFIX}"
        add_remote(project, "flaky", url, relay.endpoint_url, *local_credentials())
        before = local_state(project.root)
        log = tmp_path / "push.log"
        with log.open("w") as out:
            push = subprocess.Popen(
                [str(BIN / "dvc"), "push", "--remote", "flaky", "--jobs", "1"],
                cwd=project.root,
                env=project.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        stalled = relay.stalled.wait(timeout=120)
        os.killpg(push.pid, signal.SIGKILL)
        push.wait()
        assert stalled, f"the push ended before the network went silent:\n{log.read_text()}"
        relay.heal()

        landed = remote_etags(s3_server.endpoint_url, bucket)
        assert 0 < len(landed) < len(objects)
        assert landed.items() <= expected_etags(objects).items()  # what landed is whole
        assert local_state(project.root) == before
        missing = project.dvc("status", "--cloud", "--remote", "flaky").stdout
        assert "new:" in missing, missing  # DVC sees what did not land

        resumed = project.dvc("push", "--remote", "flaky")
        assert pushed(len(objects) - len(landed)) in resumed.stdout
        assert remote_etags(s3_server.endpoint_url, bucket) == expected_etags(objects)
        status = project.dvc("status", "--cloud", "--remote", "flaky").stdout
        assert "Cache and remote 'flaky' are in sync." in status
