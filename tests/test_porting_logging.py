"""Logging as Twisted code writes it: twistdlite.logger.Logger, globalLogPublisher, twistdlite.log (in-process)."""

from __future__ import annotations

import io
import logging
import pickle
import re

import pytest

from twistdlite import log as legacy_log
from twistdlite.logger import (
    LogLevel,
    Logger,
    LogPublisher,
    formatEvent,
    globalLogPublisher,
    system_context,
    textFileLogObserver,
)

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"


@pytest.fixture
def observed():
    """Every event logged during the test (as observers see them), and a twistd-format text copy."""
    root = logging.getLogger()
    level = root.level
    events: list = []
    text = io.StringIO()
    observers = [events.append, textFileLogObserver(text)]
    for observer in observers:
        globalLogPublisher.addObserver(observer)
    try:
        yield events, text
    finally:
        for observer in observers:
            globalLogPublisher.removeObserver(observer)
        root.setLevel(level)


class Widget:
    log = Logger()

    def work(self) -> None:
        self.log.info("made {count} widgets for {who.name}", count=3, who=self)

    name = "ann"


def test_a_class_attribute_logger_takes_the_class_as_namespace_and_the_instance_as_source(observed):
    events, text = observed
    widget = Widget()
    widget.work()
    assert Widget.log.namespace == f"{__name__}.Widget"
    assert Widget.log.source is Widget
    (event,) = [e for e in events if e.get("log_namespace") == f"{__name__}.Widget"]
    assert event["log_source"] is widget
    assert event["count"] == 3 and event["log_level"] == LogLevel.info and event["log_level"].name == "info"
    assert re.search(STAMP + rf" \[{re.escape(__name__)}\.Widget\] made 3 widgets for ann\n", text.getvalue())


def test_a_module_logger_takes_the_module_name():
    assert Logger().namespace == __name__


def test_each_level_reaches_the_log_at_the_matching_stdlib_level(observed):
    events, text = observed
    logging.getLogger().setLevel(logging.DEBUG)
    log = Logger(namespace="levels")
    for name in ("debug", "info", "warn", "error", "critical"):
        getattr(log, name)("at {name}", name=name)
    mine = [e for e in events if e.get("log_namespace") == "levels"]
    assert [e["log_level"].name for e in mine] == ["debug", "info", "warn", "error", "critical"]
    assert [e["log_record"].levelno for e in mine] == [10, 20, 30, 40, 50]
    assert LogLevel.warn > LogLevel.info and LogLevel.levelWithName("error") is LogLevel.error


def test_failure_logs_the_traceback_of_the_exception_being_handled(observed):
    events, text = observed
    log = Logger(namespace="fails")
    try:
        raise KeyError("missing")
    except KeyError:
        log.failure("lookup of {key} failed", key="k")
    (event,) = [e for e in events if e.get("log_namespace") == "fails"]
    assert event["log_failure"].check(KeyError) and event["log_level"] == LogLevel.critical
    lines = text.getvalue().splitlines()
    start = lines.index(next(line for line in lines if line.endswith("[fails] lookup of k failed")))
    assert lines[start + 1] == "\tTraceback (most recent call last):"
    assert "KeyError: 'missing'" in text.getvalue()


def test_stdlib_lines_and_legacy_lines_reach_the_same_observers(observed):
    events, text = observed
    logging.getLogger("plain.module").warning("plain %d", 1)
    legacy_log.msg("old", "style", 2)
    assert ("plain.module", "plain 1") in [(e["log_namespace"], e["message"]) for e in events]
    assert re.search(STAMP + r" \[plain\.module\] plain 1\n", text.getvalue())
    assert re.search(STAMP + r" \[-\] old style 2\n", text.getvalue())


def test_legacy_msg_takes_format_system_and_a_running_connections_system(observed):
    events, text = observed
    legacy_log.msg(format="%(user)s logged in %(times)d times", user="bob", times=2)
    legacy_log.msg("tagged", system="mysys")
    previous = system_context.enter(system_context.mark_for("Echo,4,127.0.0.1"))
    try:
        legacy_log.msg("inside a callback")
    finally:
        system_context.leave(previous)
    out = text.getvalue()
    assert re.search(r"\[-\] bob logged in 2 times\n", out)
    assert "[mysys] tagged\n" in out
    assert "[Echo,4,127.0.0.1] inside a callback\n" in out


def test_legacy_err_logs_why_and_the_traceback_for_a_failure_an_exception_or_the_current_one(observed):
    events, text = observed
    from twistdlite.failure import Failure

    legacy_log.err(Failure(ValueError("v1")), "first")
    legacy_log.err(TypeError("t2"), "second")
    try:
        raise OSError("o3")
    except OSError:
        legacy_log.err(None, "third")
    out = text.getvalue()
    for why, error in (("first", "ValueError: v1"), ("second", "TypeError: t2"), ("third", "OSError: o3")):
        assert re.search(rf"\[-\] {why}\n(\t.*\n)*?\t{error}\n", out), out
    levels = [e["log_level"] for e in events if e.get("log_namespace") == "log_legacy"]
    assert levels == [LogLevel.error] * 3


def test_legacy_observers_get_old_style_events():
    seen: list = []
    legacy_log.addObserver(seen.append)
    try:
        legacy_log.msg("a", "b", extra=5)
        logging.getLogger("x").error("stdlib")
    finally:
        legacy_log.removeObserver(seen.append)
    assert seen[0]["message"] == ("a", "b") and seen[0]["extra"] == 5 and seen[0]["isError"] == 0
    assert legacy_log.textFromEventDict(seen[0]) == "a b"
    assert seen[1]["isError"] == 1 and legacy_log.textFromEventDict(seen[1]) == "stdlib"


def test_start_logging_writes_twistd_lines_to_the_file_and_is_not_doubled():
    out = io.StringIO()
    legacy_log.startLogging(out)
    try:
        legacy_log.startLogging(out)
        legacy_log.msg("once")
    finally:
        for handler in list(logging.getLogger().handlers):
            if getattr(handler, "stream", None) is out:
                logging.getLogger().removeHandler(handler)
    assert re.fullmatch(STAMP + r" \[-\] once\n", out.getvalue())


def test_a_removed_observer_sees_nothing_more():
    seen: list = []
    globalLogPublisher.addObserver(seen.append)
    globalLogPublisher.removeObserver(seen.append)
    Logger(namespace="gone").info("after")
    assert seen == []


def test_a_logger_with_its_own_observer_and_format_edge_cases():
    seen: list = []
    log = Logger(namespace="own", observer=LogPublisher(seen.append))
    log.info("{a!r} {b[0]} {c()}", a="x", b=[7], c=lambda: "called")
    log.info("{missing}")
    log.emit("loud", "bad level")
    assert formatEvent(seen[0]) == "'x' 7 called"
    assert formatEvent(seen[1]).startswith("Unable to format event '{missing}'")
    assert seen[2]["log_level"] == LogLevel.critical and "invalidLevel" in seen[2]


def test_a_logger_held_by_an_instance_pickles_with_it():
    log = Logger(namespace="kept")
    restored = pickle.loads(pickle.dumps(log))
    assert restored.namespace == "kept" and restored.observer is globalLogPublisher
