"""`churn` prints plain text out of a terminal, whatever the colour variables say.

GitHub's runners set ``GITHUB_ACTIONS=true`` (and often ``FORCE_COLOR``), which
make typer force rich's terminal mode; CI and people's scripts parse what
`churn` prints into pipes and files. Each case runs the real console script
with stdout a pipe under one set of variables and reads its tables and
errors: no ANSI escape sequence, the expected words. Names come from the
contract; nothing here names the example's columns.
"""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer import rich_utils
from typer.testing import CliRunner

from churn.cli.app import app
from churn.core.contract import Contract
from tests.support.cli import ANSI
from tests.support.paths import PARAMS
from tests.support.servers import CHURN

# Every variable that steers colour, removed before a case sets its own.
COLOUR_VARIABLES = (
    "GITHUB_ACTIONS",
    "CI",
    "FORCE_COLOR",
    "NO_COLOR",
    "PY_COLORS",
    "TERM",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "_TYPER_FORCE_DISABLE_TERMINAL",
)
RUNNER = {"GITHUB_ACTIONS": "true", "CI": "true"}
FORCED = RUNNER | {"FORCE_COLOR": "1", "TERM": "xterm-256color"}
VARIABLES = {
    "colour forced": FORCED,
    "no colour": RUNNER | {"NO_COLOR": "1", "TERM": "dumb"},
    # NO_COLOR drops colours but rich keeps bold and dim: codes all the same.
    "no colour on a colour terminal": RUNNER | {"NO_COLOR": "1", "TERM": "xterm-256color"},
}


def environment(variables: dict[str, str]) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if k not in COLOUR_VARIABLES}
    return kept | variables


def run(
    variables: dict[str, str], *args: str, stderr: int = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    """The console script, stdin empty, stdout a pipe (stderr too unless given)."""
    return subprocess.run(
        [CHURN, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=120,
        check=False,
        env=environment(variables),
    )


def assert_plain(*texts: str) -> None:
    for text in texts:
        assert not ANSI.search(text), f"ANSI escape sequences in:\n{text!r}"


@pytest.fixture(params=list(VARIABLES), ids=list(VARIABLES))
def variables(request: pytest.FixtureRequest) -> dict[str, str]:
    return VARIABLES[request.param]


def test_help_is_plain(variables: dict[str, str]) -> None:
    result = run(variables, "--help")

    assert result.returncode == 0, result.stderr
    assert_plain(result.stdout, result.stderr)
    assert "Usage: churn [OPTIONS] COMMAND" in result.stdout
    for command in ("validate", "drift", "gate"):
        assert command in result.stdout


def test_a_usage_error_is_plain(variables: dict[str, str]) -> None:
    result = run(variables, "drift", "--no-such-option")

    assert result.returncode == 2
    assert_plain(result.stdout, result.stderr)
    assert "Usage: churn drift [OPTIONS]" in result.stderr
    assert "No such option: --no-such-option" in result.stderr


def test_an_input_error_is_one_plain_line(variables: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"

    result = run(variables, "validate", str(missing))

    assert result.returncode == 2
    assert_plain(result.stdout, result.stderr)
    assert result.stderr.splitlines() == [f"error: {missing}: no such file"]


def test_the_drift_table_is_plain(
    variables: dict[str, str], sample_csv: Path, contract: Contract
) -> None:
    sample = str(sample_csv)

    result = run(
        variables, "drift", "--reference", sample, "--current", sample, "--params", str(PARAMS)
    )

    assert result.returncode == 0, result.stderr
    assert_plain(result.stdout, result.stderr)
    features = contract.feature_names
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"NO DRIFT: 0 of {len(features)} features drifted")
    header = lines.index(next(line for line in lines if line.startswith("feature ")))
    rows = lines[header + 1 : header + 1 + len(features)]
    assert [row.split()[0] for row in rows] == list(features)
    assert all(row.split()[-1] == "no" for row in rows)


def test_help_is_plain_into_a_pipe_when_only_stderr_is_a_terminal() -> None:
    """The case a check of one stream missed: ``churn --help | less`` on a runner."""
    leader, follower = pty.openpty()
    try:
        result = run(FORCED, "--help", stderr=follower)
    finally:
        os.close(follower)
        os.close(leader)

    assert result.returncode == 0
    assert_plain(result.stdout)
    assert "Usage: churn" in result.stdout


def test_a_terminal_still_gets_colour() -> None:
    """Guards the test itself: the pattern finds the codes where colour is due."""
    leader, follower = pty.openpty()
    try:
        process = subprocess.run(
            [CHURN, "drift", "--no-such-option"],
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=follower,
            timeout=120,
            check=False,
            env=environment(FORCED),
        )
        os.close(follower)
        follower = -1
        output = b"".join(_read_all(leader)).decode(errors="replace")
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)

    assert process.returncode == 2
    assert ANSI.search(output), output
    assert "No such option" in ANSI.sub("", output)


def _read_all(fd: int) -> Iterator[bytes]:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other end is closed and drained
            return
        if not chunk:
            return
        yield chunk


@pytest.fixture
def typer_forces_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Typer as imported under ``GITHUB_ACTIONS``/``FORCE_COLOR`` (it reads them once)."""
    monkeypatch.setattr(rich_utils, "FORCE_TERMINAL", True)


@pytest.mark.usefixtures("typer_forces_the_terminal")
def test_cli_runner_output_is_plain_under_a_forced_terminal() -> None:
    """Typer's CliRunner calls the root command directly (not the console script)."""
    runner = CliRunner()

    error = runner.invoke(app, ["drift", "--no-such-option"])
    helped = runner.invoke(app, ["--help"])

    assert error.exit_code == 2
    assert_plain(error.output)
    assert "No such option: --no-such-option" in error.output
    assert helped.exit_code == 0
    assert_plain(helped.output)
    assert rich_utils.FORCE_TERMINAL is True, "the setting is restored after the command"
