"""`scripts/k8s-check.sh` (in `make lint`) fails on a manifest the schemas
refuse, and says which custom resources it could not schema-validate. checkov
is stood in for here (its own environment comes with `make k8s-check`, which
runs the real one on every overlay)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

BASH = shutil.which("bash") or "/bin/bash"
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: registry.invalid/web@sha256:%s
%s
"""
MONITOR = """\
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: web}
spec: {selector: {matchLabels: {app: web}}, endpoints: [{port: http}]}
"""


def check(tmp_path: Path, extra_field: str) -> subprocess.CompletedProcess[str]:
    directory = tmp_path / "manifests"
    directory.mkdir()
    (directory / "kustomization.yaml").write_text("resources: [all.yaml]\nnamespace: checked\n")
    (directory / "all.yaml").write_text(DEPLOYMENT % ("0" * 64, extra_field) + MONITOR)
    checkov = tmp_path / "checkov"
    checkov.write_text("#!/bin/sh\necho 'Passed checks: 1, Failed checks: 0, Skipped checks: 0'\n")
    checkov.chmod(0o755)
    bin_dir = Path(sys.executable).parent
    return subprocess.run(
        [BASH, str(REPO / "scripts" / "k8s-check.sh"), str(directory)],
        env={
            **os.environ,
            "KUBECTL": shutil.which("kubectl", path=str(bin_dir)) or "kubectl",
            "KUBE_VALIDATE": shutil.which("kubernetes-validate", path=str(bin_dir)) or "missing",
            "CHECKOV": str(checkov),
        },
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def test_a_valid_manifest_passes_and_custom_resources_are_named(tmp_path: Path) -> None:
    result = check(tmp_path, "")

    assert result.returncode == 0, result.stderr
    assert "custom resources not schema-validated: ServiceMonitor" in result.stdout


@pytest.mark.parametrize(
    "field", ["          ports: [{containerPort: eighty}]", "          bogus: 1"]
)
def test_a_manifest_the_schemas_refuse_fails_the_check(tmp_path: Path, field: str) -> None:
    result = check(tmp_path, field)

    assert result.returncode == 1
    assert "did not validate for resource deployment/web" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: the Kubernetes manifests did not pass (above)"
    )
