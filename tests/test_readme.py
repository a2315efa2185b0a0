"""README.md's two set-up-and-go commands stay true: CI runs exactly the test command, the run command's example exists."""

from __future__ import annotations

import re
import shlex

from support import ROOT


def sh_blocks() -> list:
    """The ```sh blocks of README.md, in order (each a list of lines)."""
    text = (ROOT / "README.md").read_text()
    return [block.strip().splitlines() for block in re.findall(r"```sh\n(.*?)```", text, re.S)]


def test_the_readme_has_the_run_and_the_test_commands_first():
    run, test = sh_blocks()[:2]
    assert len(run) == 1 and len(test) == 1
    assert run[0].startswith("python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/twistdlite ")
    assert test[0] == "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"


def test_ci_runs_exactly_the_readme_test_command():
    test = sh_blocks()[1][0]
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert lines[-1] == test  # the last command: its status (pytest's 5 for "no tests" too) is CI's
    assert "set -euo pipefail" in lines[:4]


def test_the_run_command_names_an_example_that_ships():
    words = shlex.split(sh_blocks()[0][0].split("&&")[-1])
    assert words[0] == ".venv/bin/twistdlite" and words[1] == "-noy"
    assert (ROOT / words[2]).is_file() and words[2].startswith("examples/")
