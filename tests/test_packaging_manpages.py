"""man/tap2deb.1 and man/tap2rpm.1 document every option their command accepts, none it doesn't, and render cleanly."""

from __future__ import annotations

import re
import shutil
import subprocess

import click
import pytest

from support import ROOT
from test_manpage import mentioned, page_text_of
from twistdlite.packaging import cli

COMMANDS = {"tap2deb": cli.tap2deb, "tap2rpm": cli.tap2rpm}


def page(name: str) -> str:
    return (ROOT / "man" / f"{name}.1").read_text()


def text_of(name: str) -> str:
    return page_text_of("\n".join(line for line in page(name).splitlines() if not line.startswith('.\\"')))


def accepted(name: str) -> set:
    command = COMMANDS[name]
    ctx = click.Context(command, info_name=name, **command.context_settings)
    return {opt for param in command.get_params(ctx) if isinstance(param, click.Option)
            for opt in param.opts + param.secondary_opts}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_is_documented_and_nothing_more(name):
    options = accepted(name)
    assert {"-t", "--tapfile", "-y", "--type", "-p", "--protocol", "-m", "--maintainer", "-e", "--description",
            "-l", "--long_description", "-V", "--set-version", "-u", "--unsigned", "-q", "--quiet", "--include",
            "--port-below-1024", "--watchdog", "--keep-state"} <= options
    assert ({"-d", "--debfile"} if name == "tap2deb" else {"--rpmfile"}) <= options
    text = text_of(name)
    missing = sorted(opt for opt in options if not mentioned(opt, text))
    assert not missing, f"{name}.1 does not document {missing}"
    section = re.split(r'^\.SH "?OPTIONS"?$', text, flags=re.M)[1].split("\n.SH ", 1)[0]
    entries = re.findall(r"^\.TP\n(.*)$", section, re.M)  # each option's own line (the text may name others')
    assert len(entries) >= 15, entries
    documented = set(re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*", "\n".join(entries)))
    assert not documented - options, f"{name}.1 documents {sorted(documented - options)}, not accepted"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_page_has_the_sections_a_user_looks_for(name):
    headings = re.findall(r'^\.SH "?([^"\n]+)"?$', page(name), re.M)
    for heading in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "THE SERVICE", "EXIT STATUS", "EXAMPLES",
                    "SEE ALSO"]:
        assert heading in headings, heading
    assert page(name).splitlines()[3].startswith(f".TH {name.upper()} 1 ")


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed (Debian package groff)")
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_groff_renders_the_page_without_warnings(name):
    path = ROOT / "man" / f"{name}.1"
    result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
