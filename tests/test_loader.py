"""Loading the application from a .tac (twistdlite.launch.loader), in-process and end to end."""

from __future__ import annotations

import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

from support import python_without_file_capabilities, run
from twistdlite.launch import loader
from twistdlite.launch.errors import LoadError
from twistdlite.launch.options import Options
from twistdlite.service import Application, IService, Service

GOOD = """
from twistdlite import service
import spine_sibling
application = service.Application("good")
application.loaded_from = __file__
application.module_name = __name__
application.sibling = spine_sibling.VALUE
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def restore_sys_path():
    before = list(sys.path)
    modules = set(sys.modules)
    yield
    sys.path[:] = before
    for name in set(sys.modules) - modules:
        if name.startswith("spine_"):
            del sys.modules[name]


# -- in-process ---------------------------------------------------------------------------------------

def test_a_tac_runs_as_a_script_with_file_set_and_its_directory_importable(tmp_path, restore_sys_path):
    write(tmp_path, "spine_sibling.py", "VALUE = 42\n")
    tac = write(tmp_path, "good.tac", GOOD)
    app = loader.load(Options(python=str(tac)))
    assert isinstance(app, Application) and app.name == "good"
    assert app.loaded_from == str(tac.resolve())
    assert app.module_name == "__builtin__"  # as twistd runs a .tac
    assert app.sibling == 42
    assert str(tmp_path) in sys.path


def test_a_relative_path_works_too(tmp_path, monkeypatch, restore_sys_path):
    write(tmp_path, "spine_sibling.py", "VALUE = 7\n")
    write(tmp_path, "good.tac", GOOD)
    monkeypatch.chdir(tmp_path)
    assert loader.load_tac("good.tac").sibling == 7


def test_any_service_is_an_application(tmp_path):
    tac = write(tmp_path, "plain.tac", """
        from twistdlite import service
        application = service.MultiService()
    """)
    assert IService(loader.load_tac(str(tac))) is not None


def test_a_missing_file(tmp_path):
    with pytest.raises(LoadError, match=r"Application file '.*nothere\.tac' does not exist"):
        loader.load_tac(str(tmp_path / "nothere.tac"))


def test_a_directory_instead_of_a_file(tmp_path):
    with pytest.raises(LoadError, match="is a directory, not a file"):
        loader.load_tac(str(tmp_path))


def test_an_unreadable_file(tmp_path):
    """Run where the file is really unreadable: as root, without the capabilities that bypass permissions."""
    tac = write(tmp_path, "secret.tac", "application = None\n")
    tac.chmod(0)
    done = python_without_file_capabilities(
        "from twistdlite.launch import loader\n"
        "from twistdlite.launch.errors import LoadError\n"
        "try:\n"
        f"    loader.load_tac({str(tac)!r})\n"
        "except LoadError as exc:\n"
        "    print(exc)\n")
    assert done.stdout == f"Application file {str(tac)!r} is not readable\n", done.stdout + done.stderr


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    tac = write(tmp_path, "bad.tac", """
        from twistdlite import service
        application = service.Application("x"
        x = 1
    """)
    with pytest.raises(LoadError) as info:
        loader.load_tac(str(tac))
    assert re.fullmatch(rf"syntax error in {re.escape(str(tac))}, line [34]: .+", info.value.message)


@pytest.mark.parametrize("content", [b"application = 1\x00\n", b"# \xff\xfe not utf-8\napplication = 1\n"])
def test_undecodable_source_is_a_clear_error(tmp_path, content):
    tac = tmp_path / "binary.tac"
    tac.write_bytes(content)
    with pytest.raises(LoadError, match="binary.tac"):
        loader.load_tac(str(tac))


def test_an_exception_shows_the_tacs_own_frames_only(tmp_path, restore_sys_path):
    write(tmp_path, "spine_helper.py", """
        def explode():
            return 1 / 0
    """)
    tac = write(tmp_path, "raises.tac", """
        import spine_helper

        def build():
            spine_helper.explode()

        build()
    """)
    with pytest.raises(LoadError) as info:
        loader.load_tac(str(tac))
    error = info.value
    assert error.message == f"error while running {tac}: ZeroDivisionError: division by zero"
    detail = error.detail
    assert detail.startswith("Traceback (most recent call last):\n")
    files = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', detail)
    assert [(Path(f).name, line, func) for f, line, func in files] == [
        ("raises.tac", "7", "<module>"), ("raises.tac", "5", "build"), ("spine_helper.py", "3", "explode")]
    assert "twistdlite" not in detail
    assert detail.rstrip().endswith("ZeroDivisionError: division by zero")


def test_a_syntax_error_in_a_module_the_tac_imports(tmp_path, restore_sys_path):
    write(tmp_path, "spine_broken.py", "def f(:\n    pass\n")
    tac = write(tmp_path, "imports.tac", "import spine_broken\n")
    with pytest.raises(LoadError, match=r"error while running .*imports\.tac: SyntaxError") as info:
        loader.load_tac(str(tac))
    assert "spine_broken.py" in info.value.detail


def test_sys_exit_in_a_tac_is_a_load_error(tmp_path):
    tac = write(tmp_path, "exits.tac", "import sys\nsys.exit(3)\n")
    with pytest.raises(LoadError, match=r"called sys\.exit\(3\)"):
        loader.load_tac(str(tac))


def test_keyboard_interrupt_while_loading_is_not_swallowed(tmp_path):
    tac = write(tmp_path, "interrupt.tac", "raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        loader.load_tac(str(tac))


def test_no_application_variable(tmp_path):
    tac = write(tmp_path, "noapp.tac", "app = 1\n")
    with pytest.raises(LoadError, match=r"noapp\.tac does not define 'application'"):
        loader.load_tac(str(tac))


@pytest.mark.parametrize("value, kind", [("None", "a NoneType"), ("42", "an int"), ("object()", "an object"),
                                         ("'Application'", "a str")])
def test_application_of_the_wrong_type(tmp_path, value, kind):
    tac = write(tmp_path, "wrong.tac", f"application = {value}\n")
    with pytest.raises(LoadError) as info:
        loader.load_tac(str(tac))
    assert f"'application' in {tac} is {kind}, not a twistdlite service" in info.value.message


def test_check_application_accepts_services_and_refuses_the_rest():
    svc = Service()
    assert loader.check_application(svc, "x") is svc
    with pytest.raises(LoadError):
        loader.check_application([svc], "x")


# -- end to end: one line on stderr, exit status 1, nothing left behind --------------------------------

def assert_failed(result, message_pattern: str, cwd: Path, traceback_ok: bool = False) -> None:
    """Exit status 1, the error is the last stderr line, and no pidfile or .tap is left."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert re.fullmatch("twistdlite: error: " + message_pattern, lines[-1]), lines
    if not traceback_ok:
        assert len(lines) == 1, result.stderr
    assert not re.search(r'File ".*twistdlite/', result.stderr), "a traceback from twistdlite's own code"
    assert not (cwd / "twistd.pid").exists()
    assert not list(cwd.glob("*.tap"))


def test_e2e_missing_tac(tmp_path):
    result = run(["-ny", "missing.tac"], cwd=tmp_path)
    assert_failed(result, r"Application file 'missing\.tac' does not exist", tmp_path)


def test_e2e_directory_instead_of_a_file(tmp_path):
    (tmp_path / "adir").mkdir()
    result = run(["-ny", "adir"], cwd=tmp_path)
    assert_failed(result, r"Application file 'adir' is a directory, not a file", tmp_path)


def test_e2e_syntax_error(tmp_path):
    write(tmp_path, "bad.tac", "from twistdlite import service\napplication = = 1\n")
    result = run(["-ny", "bad.tac"], cwd=tmp_path)
    assert_failed(result, r"syntax error in bad\.tac, line 2: invalid syntax", tmp_path)


def test_e2e_exception_while_the_tac_runs(tmp_path):
    write(tmp_path, "raises.tac", """
        def configure(port):
            raise ValueError(f"bad port {port}")

        configure("http")
    """)
    result = run(["-ny", "raises.tac"], cwd=tmp_path)
    assert_failed(result, r"error while running raises\.tac: ValueError: bad port http", tmp_path, traceback_ok=True)
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', result.stderr)
    assert [(Path(f).name, line, func) for f, line, func in frames] == [
        ("raises.tac", "5", "<module>"), ("raises.tac", "3", "configure")]
    assert result.stderr.startswith("Traceback (most recent call last):")


def test_e2e_no_application_variable(tmp_path):
    write(tmp_path, "noapp.tac", "from twistdlite import service\napp = service.Application('x')\n")
    result = run(["-ny", "noapp.tac"], cwd=tmp_path)
    assert_failed(result, r"noapp\.tac does not define 'application'", tmp_path)


def test_e2e_application_of_the_wrong_type(tmp_path):
    write(tmp_path, "wrong.tac", "application = {'name': 'not a service'}\n")
    result = run(["-ny", "wrong.tac"], cwd=tmp_path)
    assert_failed(result, r"'application' in wrong\.tac is a dict, not a twistdlite service .*", tmp_path)


def test_imports_point_one_way_the_loader_uses_persist_never_the_reverse():
    import ast

    from twistdlite.launch import persist

    tree = ast.parse(open(persist.__file__, encoding="utf-8").read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    assert not {name for name in imported if name.startswith("twistdlite.launch.loader")}, imported
