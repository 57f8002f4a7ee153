"""Shared helpers of the Python module's tests.

The module is imported from PYTHONPATH (ctest sets it to <build>/python);
the `blackbox` tool that checks what was journaled comes from
$BLACKBOX_BIN_DIR (ctest: <build>/bin), else ../../build/bin.
"""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN_DIR = pathlib.Path(os.environ.get("BLACKBOX_BIN_DIR", REPO / "build" / "bin"))


def tool(*args, journal, check=True):
    """Runs `blackbox ARGS --journal JOURNAL`; returns the CompletedProcess."""
    out = subprocess.run(
        [str(BIN_DIR / "blackbox"), *args, "--journal", str(journal)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"blackbox {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out


def tool_json_lines(*args, journal):
    """The JSON Lines printed by `blackbox ARGS --json`."""
    out = tool(*args, "--json", journal=journal).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def events(journal, *types):
    """Every event of the journal (`blackbox replay --json`), optionally of these types."""
    args = ["replay"]
    for t in types:
        args += ["--type", t]
    return tool_json_lines(*args, journal=journal)


def folded_state(journal):
    """`blackbox state --json`."""
    return json.loads(tool("state", "--json", journal=journal).stdout)


def run_python(script, *, cwd, env=None, timeout=60, check_rc=None):
    """Runs `script` (dedented) in a fresh interpreter (this one's), with the
    module importable. Returns the CompletedProcess."""
    path = pathlib.Path(cwd) / "child.py"
    path.write_text(textwrap.dedent(script))
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    full_env.pop("PYTHONFAULTHANDLER", None)
    full_env.pop("BLACKBOX_JOURNAL", None)
    if env:
        full_env.update(env)
    out = subprocess.run(
        [sys.executable, str(path)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check_rc is not None and out.returncode != check_rc:
        raise AssertionError(
            f"child exited {out.returncode}, expected {check_rc}\n"
            f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}"
        )
    return out


@pytest.fixture
def journal(tmp_path):
    return tmp_path / "journal"


@pytest.fixture
def make_manager(tmp_path, journal):
    """make_manager(**kwargs): a manager on the test's journal, with signal and
    crash handlers off (this is pytest's process); closed at the end."""
    import blackbox

    made = []

    def make(**kwargs):
        kwargs.setdefault("journal_dir", str(journal))
        kwargs.setdefault("state_file", str(tmp_path / "system_state.json"))
        kwargs.setdefault("handle_signals", False)
        kwargs.setdefault("capture_crashes", False)
        rm = blackbox.CrashRecoveryManager(**kwargs)
        made.append(rm)
        return rm

    yield make
    for rm in made:
        rm.close()
