"""The GitHub workflows stay thin, pinned and consistent with the Makefile (docs/ci.md).

What actionlint and zizmor cannot know: that every step of the checks and
pipeline jobs is a Makefile target or one plain command, that the pull-request
jobs run exactly the targets `make ci` runs (one definition of the CI path),
that no pull-request job can read a write credential, that every job that
installs the environment caches uv's downloads. And the two scripts around the
workflows: `scripts/protect-branch.sh` (run against a recording `gh`) and
`scripts/report-missing.sh`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import REPO

WORKFLOWS = REPO / ".github" / "workflows"
MAKEFILE = REPO / "Makefile"
PROTECT = REPO / "scripts" / "protect-branch.sh"
REPORT_MISSING = REPO / "scripts" / "report-missing.sh"
BASH = shutil.which("bash") or "/bin/bash"

# The commands a step of the checks and pipeline jobs may run, besides `make`.
PLAIN_COMMANDS = {"churn", "dvc", "cml", "gh", "cat", "echo"}
THIN_JOBS = ("checks", "pipeline")
# Steps every workflow may have: the environment, not the CI path.
NOT_THE_PATH = {"install"}
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
SECRET = re.compile(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)")
UV_CACHE = "~/.cache/uv"
CONTROL = {"&&", "||", ";", "|", "&"}


# --- reading the files ---------------------------------------------------------


def load_workflow(name: str) -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    return {("on" if key is True else str(key)): value for key, value in data.items()}


def workflow_names() -> list[str]:
    return sorted(p.name for p in WORKFLOWS.glob("*.yml"))


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = job.get("steps", [])
    return found


def commands(run: str) -> list[list[str]]:
    """Each command of a `run:` script, as shell words: lines joined at a
    trailing backslash, split at `&&`, `||`, `;` and `|` outside quotes;
    comments dropped."""
    found = []
    for line in re.sub(r"\\\n", " ", run).splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for token in lexer:
            if token in CONTROL:
                if words:
                    found.append(words)
                words = []
            else:
                words.append(token)
        if words:
            found.append(words)
    return found


def make_targets(words: list[str]) -> list[str]:
    """The targets of `make [options] [VAR=value] target...`."""
    return [w for w in words[1:] if not w.startswith("-") and "=" not in w]


class Makefile:
    """Rules (target → prerequisites, recipe lines) read from the Makefile's text."""

    RULE = re.compile(r"^([A-Za-z0-9_.-]+)\s*:(?!=)(.*)$")
    MAKE_CALL = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*(?:\$\(MAKE\)|make)\s+(.*)$")

    def __init__(self, text: str) -> None:
        self.prerequisites: dict[str, list[str]] = {}
        self.recipes: dict[str, list[str]] = {}
        current: str | None = None
        for line in text.splitlines():
            if line.startswith("\t") and current is not None:
                self.recipes[current].append(line.strip())
                continue
            current = None
            match = self.RULE.match(line)
            if not match or match.group(1) == ".PHONY":
                continue
            rest = match.group(2).split("##", 1)[0].split("#", 1)[0]
            if "=" in rest:  # `target: VAR := value`, a target-specific variable
                continue
            current = match.group(1)
            self.prerequisites.setdefault(current, []).extend(rest.split())
            self.recipes.setdefault(current, [])

    @property
    def targets(self) -> set[str]:
        return set(self.prerequisites)

    def make_calls(self, target: str) -> tuple[list[str], list[str]]:
        """The targets its recipe runs through make, and its other recipe lines
        (messages aside)."""
        calls, other = [], []
        for line in self.recipes.get(target, []):
            command = line.lstrip("@-+")
            match = self.MAKE_CALL.match(command)
            if match:
                calls += make_targets(["make", *match.group(1).split()])
            elif not re.match(r"^(echo|printf|true|:)\b", command):
                other.append(line)
        return calls, other

    def runs(self, target: str) -> set[str]:
        """The targets `make target` runs, aggregators expanded: a target whose
        recipe only calls make (or that has none) stands for what it calls."""
        if target in NOT_THE_PATH:
            return set()
        calls, other = self.make_calls(target)
        if other:
            return {target}
        found: set[str] = set()
        for name in [*self.prerequisites.get(target, []), *calls]:
            found |= self.runs(name)
        return found


@pytest.fixture(scope="module")
def makefile() -> Makefile:
    return Makefile(MAKEFILE.read_text())


def job_make_targets(workflow: dict[str, Any], job_names: tuple[str, ...]) -> set[str]:
    found: set[str] = set()
    for name in job_names:
        for step in steps(workflow["jobs"][name]):
            for words in commands(step.get("run", "")):
                if words[0] == "make":
                    found |= set(make_targets(words))
    return found


# --- thin and consistent ---------------------------------------------------------


@pytest.mark.parametrize("name", ["pr.yml", "main.yml"])
def test_checks_and_pipeline_steps_are_make_targets_or_plain_commands(
    name: str, makefile: Makefile
) -> None:
    workflow = load_workflow(name)
    for job_name in THIN_JOBS:
        for step in steps(workflow["jobs"][job_name]):
            for words in commands(step.get("run", "")):
                where = f"{name} {job_name} step {step.get('name', words)!r}"
                assert words[0] == "make" or words[0] in PLAIN_COMMANDS, (
                    f"{where} runs {words[0]!r}: put the logic in a make target or the package"
                )
                if words[0] == "make":
                    targets = make_targets(words)
                    assert targets, f"{where}: a bare `make`"
                    missing = set(targets) - makefile.targets
                    assert not missing, f"{where} calls {sorted(missing)}, not in the Makefile"


def test_make_ci_runs_the_checks_and_pipeline_targets(makefile: Makefile) -> None:
    """The Makefile's own definition, read from its `ci`, `ci-checks` and
    `ci-pipeline` rules (prerequisites and recipe lines)."""
    assert {"ci", "ci-checks", "ci-pipeline"} <= makefile.targets
    assert makefile.runs("ci") == makefile.runs("ci-checks") | makefile.runs("ci-pipeline")
    assert "ci-pipeline" in makefile.runs("ci"), "ci-pipeline runs a script: it is the leaf"


@pytest.mark.parametrize("name", ["pr.yml", "main.yml"])
def test_the_workflow_runs_exactly_what_make_ci_runs(name: str, makefile: Makefile) -> None:
    in_workflow = job_make_targets(load_workflow(name), THIN_JOBS) - NOT_THE_PATH

    assert in_workflow == makefile.runs("ci"), (
        f"{name}'s checks and pipeline jobs call {sorted(in_workflow)}, "
        f"`make ci` runs {sorted(makefile.runs('ci'))}: one definition of the CI path"
    )


def test_the_checks_job_is_ci_checks_and_the_pipeline_job_ci_pipeline(makefile: Makefile) -> None:
    workflow = load_workflow("pr.yml")

    assert job_make_targets(workflow, ("checks",)) - NOT_THE_PATH == makefile.runs("ci-checks")
    assert job_make_targets(workflow, ("pipeline",)) - NOT_THE_PATH == makefile.runs("ci-pipeline")


def test_model_gate_runs_the_gate_target(makefile: Makefile) -> None:
    assert job_make_targets(load_workflow("pr.yml"), ("model-gate",)) - NOT_THE_PATH == {"gate"}
    assert "gate" in makefile.targets


def test_ci_run_runs_what_make_ci_runs(makefile: Makefile) -> None:
    """`.ci/run` calls `make ci`, or the very targets it runs (then more: main's
    container and deploy tests)."""
    called: set[str] = set()
    for words in commands((REPO / ".ci" / "run").read_text()):
        if words[0] == "make":
            for target in make_targets(words):
                called |= makefile.runs(target)

    missing = makefile.runs("ci") - called
    assert not missing, f".ci/run skips {sorted(missing)}, which `make ci` runs"


# --- pull-request jobs ---------------------------------------------------------------


def test_pull_requests_run_on_pull_request_only() -> None:
    triggers = load_workflow("pr.yml")["on"]

    assert set(triggers) == {"pull_request"}, (
        "never pull_request_target (a fork's code with secrets)"
    )


def test_model_gate_and_comment_run_whatever_happened_before() -> None:
    jobs = load_workflow("pr.yml")["jobs"]
    gate, comment = jobs["model-gate"], jobs["comment"]

    assert gate["name"] == "model-gate", "the required status check's name"
    assert set(gate["needs"]) == {"checks", "pipeline"}
    assert set(comment["needs"]) == {"checks", "pipeline"}
    for job in (gate, comment):
        assert "!cancelled()" in job["if"]
    first = steps(gate)[0]
    assert "run" in first and "exit 1" in first["run"], "model-gate fails first when a job failed"
    assert "needs.pipeline.result != 'success'" in first["if"]


def test_the_comment_job_writes_a_report_when_the_pipeline_wrote_none() -> None:
    comment = load_workflow("pr.yml")["jobs"]["comment"]
    runs = [step.get("run", "") for step in steps(comment)]

    assert any("scripts/report-missing.sh" in run for run in runs)
    download = next(s for s in steps(comment) if "download-artifact" in s.get("uses", ""))
    assert download.get("continue-on-error") is True, "the artifact is absent when checks failed"


def test_the_pipeline_uploads_its_reports_whatever_happened() -> None:
    pipeline = load_workflow("pr.yml")["jobs"]["pipeline"]
    upload = next(s for s in steps(pipeline) if "upload-artifact" in s.get("uses", ""))
    paths = upload["with"]["path"].split()

    assert "!cancelled()" in upload["if"]
    assert {"reports/", "dvc.lock", "metrics.json"} <= set(paths)


def write_secrets() -> set[str]:
    """The secrets of the steps that write to the DVC remote (main.yml's dvc push)."""
    found: set[str] = set()
    for name in workflow_names():
        for job in load_workflow(name)["jobs"].values():
            for step in steps(job):
                if any(w[:2] == ["dvc", "push"] for w in commands(step.get("run", ""))):
                    found |= set(SECRET.findall(json.dumps(step.get("env", {}))))
    return found


def test_no_pull_request_job_reads_a_write_credential() -> None:
    pr_text = (WORKFLOWS / "pr.yml").read_text()
    written = write_secrets()
    pr_commands = [
        words
        for job in load_workflow("pr.yml")["jobs"].values()
        for step in steps(job)
        for words in commands(step.get("run", ""))
    ]

    assert written, "main.yml pushes to the DVC remote with its own credentials"
    assert not written & set(SECRET.findall(pr_text))
    assert not any(words[:2] == ["dvc", "push"] for words in pr_commands)


def environment_name(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    if isinstance(env, dict):
        name: str | None = env.get("name")
        return name
    return env if isinstance(env, str) else None


@pytest.mark.parametrize("name", workflow_names())
def test_secrets_are_read_only_in_jobs_with_an_environment(name: str) -> None:
    """GITHUB_TOKEN aside (zizmor --persona auditor checks the same)."""
    for job_name, job in load_workflow(name)["jobs"].items():
        used = set(SECRET.findall(json.dumps(job))) - {"GITHUB_TOKEN"}
        if used:
            assert environment_name(job), f"{name} {job_name} reads {sorted(used)} outside one"


def test_pull_requests_and_main_use_different_environments() -> None:
    pr_envs = {environment_name(j) for j in load_workflow("pr.yml")["jobs"].values()} - {None}
    main_envs = {environment_name(j) for j in load_workflow("main.yml")["jobs"].values()} - {None}

    assert pr_envs, "the pipeline job's read-only credentials live in an environment"
    assert not pr_envs & main_envs


# --- pinned and cached ---------------------------------------------------------------


@pytest.mark.parametrize("name", workflow_names())
def test_every_action_is_pinned_by_commit(name: str) -> None:
    for job_name, job in load_workflow(name)["jobs"].items():
        for step in steps(job):
            uses = step.get("uses")
            if uses is None or uses.startswith("./"):
                continue
            assert PINNED.match(uses), f"{name} {job_name}: {uses} is not pinned to a commit SHA"


def runs_make(step: dict[str, Any]) -> bool:
    return any(words[0] == "make" for words in commands(step.get("run", "")))


@pytest.mark.parametrize("name", workflow_names())
def test_jobs_that_install_cache_uv_downloads_not_the_venv(name: str) -> None:
    for job_name, job in load_workflow(name)["jobs"].items():
        job_steps = steps(job)
        caches = [s for s in job_steps if s.get("uses", "").startswith("actions/cache@")]
        for cache in caches:
            assert cache["with"]["path"].strip() == UV_CACHE, f"{name} {job_name}: only uv's cache"
            assert "hashFiles('uv.lock')" in cache["with"]["key"]
            assert "runner.os" in cache["with"]["key"]
        first_make = next((i for i, s in enumerate(job_steps) if runs_make(s)), None)
        if first_make is None:
            continue
        assert caches, f"{name} {job_name} installs the environment without the uv cache"
        assert job_steps.index(caches[0]) < first_make, f"{name} {job_name}: cache before make"


# --- repository settings -----------------------------------------------------------


def test_dependabot_updates_python_and_actions_weekly_in_groups() -> None:
    config = yaml.safe_load((REPO / ".github" / "dependabot.yml").read_text())
    updates = {u["package-ecosystem"]: u for u in config["updates"]}

    assert "github-actions" in updates
    assert {"uv", "pip"} & set(updates)
    for update in updates.values():
        assert update["schedule"]["interval"] == "weekly"
        assert update["groups"]


def codeowners_rules() -> list[tuple[str, list[str]]]:
    rules = []
    for line in (REPO / ".github" / "CODEOWNERS").read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            rules.append((words[0], words[1:]))
    return rules


def owns(pattern: str, path: str) -> bool:
    """CODEOWNERS' matching, for the patterns this repository uses."""
    anchored = pattern.lstrip("/")
    if pattern.endswith("/"):
        return (
            path.startswith(anchored) if pattern.startswith("/") else f"/{anchored}" in f"/{path}"
        )
    return fnmatch(path, anchored) if pattern.startswith("/") else fnmatch(Path(path).name, pattern)


@pytest.mark.parametrize(
    "path",
    [
        "params.yaml",
        ".github/workflows/pr.yml",
        ".github/CODEOWNERS",
        "src/churn/release/gate.py",
        "scripts/ci-pipeline.sh",
        "Makefile",
    ],
)
def test_codeowners_cover_what_decides_a_release(path: str) -> None:
    matching = [owners for pattern, owners in codeowners_rules() if owns(pattern, path)]

    assert matching, f"no code owner for {path}"
    assert matching[-1], f"the last rule for {path} (the one GitHub applies) names no owner"


def test_the_s3_remote_verifies_what_it_pulls(makefile: Makefile) -> None:
    assert any(
        re.search(r"dvc remote modify .* verify true$", line)
        for line in makefile.recipes["s3-remote"]
    )


def test_protect_branch_is_a_make_target(makefile: Makefile) -> None:
    assert makefile.recipes["protect-branch"] == ["scripts/protect-branch.sh"]


# --- scripts/protect-branch.sh, against a recording gh ----------------------------------------

FAKE_GH = """#!{python}
import json, os, sys
args = sys.argv[1:]
stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
with open(os.environ["GH_LOG"], "a") as log:
    log.write(json.dumps({{"argv": args, "stdin": stdin}}) + "\\n")
if args[:2] == ["auth", "status"]:
    sys.exit(1 if os.environ.get("GH_FAKE_LOGGED_OUT") else 0)
if args[:2] == ["repo", "view"]:
    print("viewed-owner/viewed-repo")
    sys.exit(0)
if args[:1] == ["api"]:
    print(json.dumps({{"url": "https://api.github.invalid/protection", "enforce_admins": {{}}}}))
    sys.exit(int(os.environ.get("GH_FAKE_API_EXIT", "0")))
sys.exit(3)
"""

EXPECTED_PAYLOAD = {
    "required_status_checks": {
        "strict": True,
        "checks": [{"context": "checks"}, {"context": "model-gate"}],
    },
    "enforce_admins": False,
    "required_pull_request_reviews": {
        "dismiss_stale_reviews": True,
        "require_code_owner_reviews": True,
        "required_approving_review_count": 1,
    },
    "restrictions": None,
    "allow_force_pushes": False,
    "allow_deletions": False,
}


@pytest.fixture
def gh_dir(tmp_path: Path) -> Path:
    """A directory holding only a recording `gh`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH.format(python=sys.executable))
    gh.chmod(0o755)
    return bin_dir


def protect(
    path: str, tmp_path: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """Run the script with PATH = `path` only (bash itself is called by its full path)."""
    log = tmp_path / "gh.log"
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GH_", "GITHUB_")) and k not in {"REPO", "BRANCH", "ENFORCE_ADMINS"}
    }
    result = subprocess.run(
        [BASH, str(PROTECT)],
        env={**clean, "PATH": path, "GH_LOG": str(log), **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def api_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [call for call in calls if call["argv"][:1] == ["api"]]


def test_protect_branch_sends_the_protection_rule(gh_dir: Path, tmp_path: Path) -> None:
    result, calls = protect(str(gh_dir), tmp_path, GITHUB_REPOSITORY="an-owner/a-repo")

    assert result.returncode == 0, result.stderr
    [call] = api_calls(calls)
    argv = call["argv"]
    assert argv[argv.index("--method") + 1] == "PUT"
    assert "repos/an-owner/a-repo/branches/main/protection" in argv
    assert argv[argv.index("--input") + 1] == "-"
    assert json.loads(call["stdin"]) == EXPECTED_PAYLOAD
    assert "an-owner/a-repo@main" in result.stdout


def test_protect_branch_finds_the_repository_with_gh(gh_dir: Path, tmp_path: Path) -> None:
    result, calls = protect(str(gh_dir), tmp_path)

    assert result.returncode == 0, result.stderr
    assert any(call["argv"][:2] == ["repo", "view"] for call in calls)
    [call] = api_calls(calls)
    assert "repos/viewed-owner/viewed-repo/branches/main/protection" in call["argv"]


def test_protect_branch_is_idempotent(gh_dir: Path, tmp_path: Path) -> None:
    first, _ = protect(str(gh_dir), tmp_path, GITHUB_REPOSITORY="an-owner/a-repo")
    second, calls = protect(str(gh_dir), tmp_path, GITHUB_REPOSITORY="an-owner/a-repo")

    assert first.returncode == second.returncode == 0
    one, two = api_calls(calls)
    assert one == two, "the same PUT, the same payload: running it again changes nothing"


def test_protect_branch_can_bind_admins_too(gh_dir: Path, tmp_path: Path) -> None:
    result, calls = protect(
        str(gh_dir), tmp_path, GITHUB_REPOSITORY="an-owner/a-repo", ENFORCE_ADMINS="true"
    )

    assert result.returncode == 0, result.stderr
    [call] = api_calls(calls)
    assert json.loads(call["stdin"]) == {**EXPECTED_PAYLOAD, "enforce_admins": True}


def test_protect_branch_without_gh_exits_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    result, calls = protect(str(empty), tmp_path, GITHUB_REPOSITORY="an-owner/a-repo")

    assert result.returncode == 2
    assert "gh" in result.stderr and "not installed" in result.stderr
    assert calls == []


def test_protect_branch_logged_out_exits_2(gh_dir: Path, tmp_path: Path) -> None:
    result, calls = protect(
        str(gh_dir), tmp_path, GITHUB_REPOSITORY="an-owner/a-repo", GH_FAKE_LOGGED_OUT="1"
    )

    assert result.returncode == 2
    assert "gh auth login" in result.stderr
    assert api_calls(calls) == []


def test_protect_branch_says_when_github_refuses(gh_dir: Path, tmp_path: Path) -> None:
    result, _ = protect(
        str(gh_dir), tmp_path, GITHUB_REPOSITORY="an-owner/a-repo", GH_FAKE_API_EXIT="1"
    )

    assert result.returncode == 1
    assert "refused" in result.stderr


# --- scripts/report-missing.sh ---------------------------------------------------------


def report_missing(tmp_path: Path, **env: str) -> tuple[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    subprocess.run(
        [BASH, str(REPORT_MISSING)],
        env={**clean, "REPORT_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    return (tmp_path / "pr.md").read_text(), (tmp_path / "pr-inline.md").read_text()


RUN = {
    "GITHUB_SERVER_URL": "https://github.example",
    "GITHUB_REPOSITORY": "an-owner/a-repo",
    "GITHUB_RUN_ID": "42",
}


def test_report_missing_names_the_failed_checks_and_links_the_run(tmp_path: Path) -> None:
    report, inline = report_missing(
        tmp_path, CHECKS_RESULT="failure", PIPELINE_RESULT="skipped", **RUN
    )

    assert report == inline
    assert "The `checks` job did not pass" in report
    assert "| `pipeline` | skipped |" in report
    assert "(https://github.example/an-owner/a-repo/actions/runs/42)" in report


def test_report_missing_names_the_failed_pipeline(tmp_path: Path) -> None:
    report, _ = report_missing(tmp_path, CHECKS_RESULT="success", PIPELINE_RESULT="failure", **RUN)

    assert "The `pipeline` job stopped before it could write its report" in report
    assert "| `checks` | success |" in report


def test_report_missing_without_a_run_still_writes(tmp_path: Path) -> None:
    report, _ = report_missing(tmp_path, CHECKS_RESULT="cancelled", PIPELINE_RESULT="skipped")

    assert "checks" in report
    assert "](" not in report, "no link without GITHUB_REPOSITORY and GITHUB_RUN_ID"


# --- the Kubernetes deploy: staging, then production, keyless ------------------------


def kubernetes_jobs(name: str) -> dict[str, dict[str, Any]]:
    return {
        job_name: job
        for job_name, job in load_workflow(name)["jobs"].items()
        if job.get("if") == "vars.DEPLOY_TARGET == 'kubernetes'"
    }


def test_main_deploys_to_staging_then_to_production() -> None:
    jobs = kubernetes_jobs("main.yml")

    assert {environment_name(job) for job in jobs.values()} == {"staging", "production"}
    production = next(job for job in jobs.values() if environment_name(job) == "production")
    staging = next(name for name, job in jobs.items() if environment_name(job) == "staging")
    assert staging in production["needs"], "production only after staging"


@pytest.mark.parametrize("name", ["main.yml", "rollback.yml"])
def test_kubernetes_jobs_reach_the_cloud_by_oidc_not_stored_keys(name: str) -> None:
    jobs = kubernetes_jobs(name)

    assert jobs
    for job_name, job in jobs.items():
        assert job["permissions"]["id-token"] == "write", f"{job_name}: OIDC needs id-token: write"
        secrets = set(SECRET.findall(json.dumps(job)))
        assert not {s for s in secrets if s.startswith(("AWS_", "GCP_", "AZURE_"))}, (
            f"{job_name} reads a stored cloud key"
        )
        assume = [s for s in steps(job) if "configure-aws-credentials" in s.get("uses", "")]
        assert [s["with"]["role-to-assume"] for s in assume] == ["${{ vars.AWS_ROLE_ARN }}"]
        deploy = steps(job)[-1]
        assert deploy["env"]["DEPLOY_TARGET"] == "kubernetes"
        assert commands(deploy["run"])[0][:2] in (["make", "deploy"], ["make", "rollback"])


def test_the_kubernetes_deploy_gets_the_image_by_digest() -> None:
    workflow = load_workflow("main.yml")
    for job in kubernetes_jobs("main.yml").values():
        assert steps(job)[-1]["env"]["IMAGE"] == "${{ needs.image.outputs.image-digest }}"
    assert "image-digest" in workflow["jobs"]["image"]["outputs"]


def test_the_serving_base_image_is_pinned_by_digest_and_the_same_everywhere() -> None:
    """The Dockerfiles' default base and the one the main workflow builds on are one
    digest-pinned name (a tag alone can be moved under a release)."""
    defaults = {
        path.name: re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", path.read_text(), re.MULTILINE)
        for path in (REPO / "Dockerfile", REPO / "containers" / "mlflow.Dockerfile")
    }
    built_on = {
        match
        for name in workflow_names()
        for match in re.findall(r"PYTHON_IMAGE=(\S+)", (WORKFLOWS / name).read_text())
    }
    names = {name for found in defaults.values() for name in found} | built_on
    assert all(found for found in defaults.values()), defaults
    assert built_on, "no workflow names the base image"
    assert len(names) == 1, names
    assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", names.pop())
