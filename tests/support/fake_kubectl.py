"""A recording stand-in for `kubectl` (and `churn smoke`) for the deploy script's
Kubernetes target: it appends its argv to a log and answers from a small
state file as a cluster would (the Service's selector, each colour's image and
size), so the target's commands can be checked one by one without a cluster.

Installed on PATH as `kubectl` and as `churn` by `tests/unit/test_deploy_kubernetes.py`.
Failures to inject, from the environment:
  FAKE_NEVER_READY   a colour whose `rollout status` times out
  FAKE_SMOKE_FAIL    a colour whose smoke test fails (directly or through the Service)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

NAME = "churn-serving"
# Local ports the stand-in's port-forward "opens", one per Service.
PORTS = {f"service/{NAME}": 41000, f"service/{NAME}-blue": 41001, f"service/{NAME}-green": 41002}


def load(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def kubectl(args: list[str], state: dict[str, Any]) -> int:  # noqa: PLR0911, PLR0912
    words = list(args)
    for flag in ("--context", "--namespace"):
        if flag in words:
            at = words.index(flag)
            del words[at : at + 2]
    verb, rest = words[0], words[1:]
    deployments: dict[str, dict[str, Any]] = state["deployments"]
    if verb in {"apply", "delete"}:
        return 0
    if verb == "get" and rest[0] == "namespace":
        print(f"namespace/{rest[1]}")
        return 0
    if verb == "get" and rest[0] == "service":
        print(state["selector"], end="")
        return 0
    if verb == "get" and rest[0] == "hpa":
        print(state["hpa_min"], end="")
        return 0
    if verb == "get" and rest[0] == "deployment":
        slot = rest[1].rsplit("-", 1)[1]
        if slot not in deployments:
            print(
                f'Error from server (NotFound): deployments.apps "{rest[1]}" not found',
                file=sys.stderr,
            )
            return 1
        found = deployments[slot]
        jsonpath = rest[rest.index("-o") + 1]
        print(found["replicas"], end="")
        if "image" in jsonpath:
            print(f" {found['image']}", end="")
        return 0
    if verb == "get" and rest[0] == "endpointslices":
        selected = state["selector"]
        size = deployments.get(selected, {}).get("replicas", 0)
        for pod in range(size):
            print(f"{NAME}-{selected}-5d9c7-{pod}")
        return 0
    if verb == "patch" and rest[0] == "deployment":
        slot = rest[1].rsplit("-", 1)[1]
        spec = json.loads(rest[rest.index("--patch") + 1])["spec"]
        [container] = spec["template"]["spec"]["containers"]
        deployments[slot] = {"replicas": spec["replicas"], "image": container["image"]}
        return 0
    if verb == "patch" and rest[0] == "service":
        state["selector"] = json.loads(rest[rest.index("--patch") + 1])["spec"]["selector"]["slot"]
        return 0
    if verb == "scale":
        slot = rest[0].rsplit("-", 1)[1]
        deployments[slot]["replicas"] = int(rest[rest.index("--replicas") + 1])
        return 0
    if verb == "rollout":
        slot = rest[1].rsplit("-", 1)[1]
        if slot == os.environ.get("FAKE_NEVER_READY"):
            print(f"error: timed out waiting for the condition on {rest[1]}", file=sys.stderr)
            return 1
        print(f'deployment "{rest[1]}" successfully rolled out')
        return 0
    if verb == "logs":
        print("a log line")
        return 0
    if verb == "port-forward":
        print(f"Forwarding from 127.0.0.1:{PORTS[rest[0]]} -> 8000", flush=True)
        time.sleep(300)  # until the deploy script stops it
        return 0
    print(f"fake kubectl: unexpected {args}", file=sys.stderr)
    return 3


def smoke(args: list[str], state: dict[str, Any]) -> int:
    port = int(args[1].rsplit(":", 1)[1])
    service = next(name for name, number in PORTS.items() if number == port)
    slot = state["selector"] if service == f"service/{NAME}" else service.rsplit("-", 1)[1]
    return 1 if slot == os.environ.get("FAKE_SMOKE_FAIL") else 0


def main() -> int:
    tool = Path(sys.argv[0]).name
    args = sys.argv[1:]
    with Path(os.environ["FAKE_LOG"]).open("a") as log:
        log.write(json.dumps([tool, *args]) + "\n")
    state_file = Path(os.environ["FAKE_STATE"])
    state = load(state_file)
    code = kubectl(args, state) if tool == "kubectl" else smoke(args, state)
    if not (tool == "kubectl" and "port-forward" in args):
        state_file.write_text(json.dumps(state))
    return code


if __name__ == "__main__":
    sys.exit(main())
