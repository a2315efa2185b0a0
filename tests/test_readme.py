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


def porting_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("\n## Porting Twisted code\n", 1)[1].split("\n## ", 1)[0]


def test_the_porting_import_map_names_modules_that_exist_and_covers_the_twisted_apis_ported():
    import importlib

    rows = re.findall(r"^\| `(twisted\.[\w.*]+)` \| `(twistdlite\.[\w.*]+)`", porting_section(), re.M)
    mapping = dict(rows)
    for twisted_name, ours in mapping.items():
        assert twisted_name.rsplit(".", 1)[-1] == ours.rsplit(".", 1)[-1], (twisted_name, ours)  # leaf names kept
        importlib.import_module(ours.replace(".*", ""))
    for needed in ("twisted.internet.defer", "twisted.internet.task", "twisted.internet.threads",
                   "twisted.internet.reactor", "twisted.internet.protocol", "twisted.application.service",
                   "twisted.application.internet", "twisted.python.log", "twisted.logger",
                   "twisted.protocols.basic", "twisted.python.failure", "twisted.python.threadpool"):
        assert needed in mapping, needed


def test_the_porting_section_says_what_does_not_port_each_with_why():
    section = porting_section()
    assert "What does not port, and why:" in section
    items = re.findall(r"^- \*\*(.+?)\*\*(.*(?:\n  .*)*)", section.split("What does not port, and why:", 1)[1], re.M)
    names = [name for name, _ in items]
    assert len(items) >= 5 and all(len(reason.strip()) > 20 for _, reason in items), items
    assert any("usePTY" in name for name in names) and any("zope.interface" in name for name in names)
