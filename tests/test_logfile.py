"""twistdlite.logfile: LogFile (by size) and DailyLogFile (by date), in-process."""

from __future__ import annotations

import errno
import io
import logging
import os
import pickle
import stat
import time

import pytest

from twistdlite.logfile import DailyLogFile, LogFile, RotatingLogHandler
from twistdlite.logger import report_errors_once


def read(path) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_logfile_writes_to_directory_and_name(tmp_path):
    log = LogFile("app.log", str(tmp_path))
    log.write("hello\n")
    log.write(b"bytes too\n")
    assert read(tmp_path / "app.log") == "hello\nbytes too\n"
    assert log.path == str(tmp_path / "app.log") and log.rotateLength == 1000000
    log.close()
    assert log.closed
    log.write("reopened on write\n")
    assert read(tmp_path / "app.log").endswith("reopened on write\n")
    log.close()


def test_logfile_rotates_by_size_newest_is_1_and_keeps_at_most_max(tmp_path):
    log = LogFile("app.log", str(tmp_path), rotateLength=100, maxRotatedFiles=2)
    for number in range(12):
        log.write(f"line {number:02d} " + "x" * 30 + "\n")  # 39 bytes: two lines per file
    log.close()
    names = sorted(os.listdir(tmp_path))
    assert names == ["app.log", "app.log.1", "app.log.2"]
    for name in names:
        assert os.path.getsize(tmp_path / name) <= 100
    assert read(tmp_path / "app.log").startswith("line 10")
    assert read(tmp_path / "app.log.1").startswith("line 08")
    assert read(tmp_path / "app.log.2").startswith("line 06")
    assert log.listLogs() == [1, 2]


def test_logfile_keeps_every_rotated_file_when_max_is_none(tmp_path):
    log = LogFile("app.log", str(tmp_path), rotateLength=50)
    for number in range(6):
        log.write(f"{number}" * 40 + "\n")
    log.close()
    assert log.listLogs() == [1, 2, 3, 4, 5]
    assert read(tmp_path / "app.log.5").startswith("0")  # the highest number is the oldest
    assert read(tmp_path / "app.log").startswith("5")


@pytest.mark.parametrize("length", [0, None])
def test_logfile_rotate_length_zero_or_none_never_rotates_by_size(tmp_path, length):
    log = LogFile("app.log", str(tmp_path), rotateLength=length)
    for _ in range(50):
        log.write("y" * 99 + "\n")
    log.close()
    assert os.listdir(tmp_path) == ["app.log"]
    assert os.path.getsize(tmp_path / "app.log") == 5000


def test_rotate_now_and_then_shifts_files(tmp_path):
    log = LogFile.fromFullPath(str(tmp_path / "app.log"), maxRotatedFiles=3)
    for text in ("first\n", "second\n", "third\n"):
        log.write(text)
        log.rotate()
    log.write("current\n")
    log.close()
    assert [read(tmp_path / n) for n in ("app.log", "app.log.1", "app.log.2", "app.log.3")] == [
        "current\n", "third\n", "second\n", "first\n"]


def test_a_file_moved_away_is_reopened_at_its_path_by_rotate_without_renaming_more(tmp_path):
    log = LogFile("app.log", str(tmp_path), maxRotatedFiles=5)
    log.write("before\n")
    os.rename(tmp_path / "app.log", tmp_path / "app.log.1")  # what logrotate does
    log.write("still the old file\n")
    log.rotate()  # postrotate: kill -USR1
    log.write("after\n")
    log.close()
    assert read(tmp_path / "app.log.1") == "before\nstill the old file\n"
    assert read(tmp_path / "app.log") == "after\n"
    assert not (tmp_path / "app.log.2").exists()


def test_reopen_recreates_a_deleted_file(tmp_path):
    log = LogFile("app.log", str(tmp_path))
    log.write("gone\n")
    os.unlink(tmp_path / "app.log")
    log.reopen()
    log.write("back\n")
    log.close()
    assert read(tmp_path / "app.log") == "back\n"


def test_copytruncate_leaves_a_working_log_without_a_hole_or_early_rotation(tmp_path):
    log = LogFile("app.log", str(tmp_path), rotateLength=200)
    for _ in range(3):
        log.write("z" * 59 + "\n")
    with open(tmp_path / "app.log", "r+b") as handle:  # logrotate copytruncate
        handle.truncate(0)
    log.write("after truncate\n")
    for _ in range(2):
        log.write("w" * 59 + "\n")
    log.close()
    data = (tmp_path / "app.log").read_bytes()
    assert data.startswith(b"after truncate\n") and b"\0" not in data
    assert not (tmp_path / "app.log.1").exists()  # 135 bytes: no rotation yet


def test_a_symlink_at_the_log_path_is_refused_not_followed(tmp_path):
    target = tmp_path / "target"
    target.write_text("precious\n")
    os.symlink(target, tmp_path / "app.log")
    with pytest.raises(OSError) as info:
        LogFile("app.log", str(tmp_path))
    assert info.value.errno == errno.ELOOP
    assert target.read_text() == "precious\n"


def test_default_mode_is_applied_to_a_new_file(tmp_path):
    log = LogFile("app.log", str(tmp_path), defaultMode=0o640)
    log.close()
    assert stat.S_IMODE(os.stat(tmp_path / "app.log").st_mode) == 0o640


def test_only_regular_files_rotate(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        log = LogFile("fifo", str(tmp_path), rotateLength=10)
        for _ in range(5):
            log.write("more than ten bytes\n")
        log.rotate()
        log.close()
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        assert sorted(os.listdir(tmp_path)) == ["fifo"]
        assert os.read(reader, 4096) == b"more than ten bytes\n" * 5
    finally:
        os.close(reader)


def test_undecodable_bytes_are_written_escaped_and_the_file_stays_utf8(tmp_path):
    log = LogFile("app.log", str(tmp_path))
    log.write("caf\udcc3 \u00e9t\u00e9\n")
    log.write(b"raw \xff\xfe\n")
    log.close()
    data = (tmp_path / "app.log").read_bytes()
    data.decode("utf-8")  # still valid UTF-8
    assert data == "caf\\udcc3 \u00e9t\u00e9\nraw \\udcff\\udcfe\n".encode("utf-8")


def test_logfile_pickles_without_its_open_file_and_reopens(tmp_path):
    log = LogFile("app.log", str(tmp_path), rotateLength=500, maxRotatedFiles=4)
    log.write("one\n")
    copy = pickle.loads(pickle.dumps(log))
    log.close()
    assert (copy.path, copy.rotateLength, copy.maxRotatedFiles) == (log.path, 500, 4)
    copy.write("two\n")
    copy.close()
    assert read(tmp_path / "app.log") == "one\ntwo\n"


def test_handler_formats_each_record_once_and_rotates(tmp_path):
    calls = []

    class Counting(logging.Formatter):
        def format(self, record):
            calls.append(record)
            return record.getMessage()

    handler = RotatingLogHandler(str(tmp_path / "h.log"), maxBytes=30, backupCount=2)
    handler.setFormatter(Counting())
    logger = logging.Logger("test.rotating")
    logger.addHandler(handler)
    for number in range(6):
        logger.warning("record %d abcdefgh", number)  # 19 bytes with the newline
    handler.close()
    assert len(calls) == 6
    assert read(tmp_path / "h.log") == "record 5 abcdefgh\n"
    assert read(tmp_path / "h.log.1") == "record 4 abcdefgh\n"
    assert read(tmp_path / "h.log.2") == "record 3 abcdefgh\n"
    assert not (tmp_path / "h.log.3").exists()


def _no_write_access(monkeypatch):
    """As a daemon that dropped privileges sees a root-owned run directory: nothing is writable."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if mode & os.W_OK else real(path, mode, **kw))


def test_a_rotation_it_may_not_do_leaves_the_file_open_and_says_so(tmp_path, monkeypatch):
    handler = RotatingLogHandler(str(tmp_path / "h.log"), maxBytes=40, backupCount=2)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.write("first line\n")
    _no_write_access(monkeypatch)
    with pytest.raises(PermissionError, match=f"{tmp_path} is not writable by uid {os.geteuid()}"):
        handler.rotate_now()  # SIGUSR1: refused before anything is touched
    handler.write("x" * 30 + "\n")  # past maxBytes: rotation is off, the line is written
    handler.write("and more\n")
    handler.close()
    assert sorted(os.listdir(tmp_path)) == ["h.log"]
    lines = read(tmp_path / "h.log").splitlines()
    assert lines[0] == "first line"
    assert lines[1].startswith("Cannot rotate the log (") and lines[1].endswith("rotation by size is off from now on")
    assert lines[2:] == ["x" * 30, "and more"]


def test_a_reopen_that_fails_keeps_writing_to_the_open_file(tmp_path, monkeypatch):
    handler = RotatingLogHandler(str(tmp_path / "h.log"), maxBytes=0, backupCount=0)
    handler.write("before\n")
    os.rename(tmp_path / "h.log", tmp_path / "h.log.old")  # moved away by logrotate

    def refused():
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(handler, "_open", refused)
    with pytest.raises(PermissionError):
        handler.reopen()
    handler.write("after\n")
    handler.close()
    assert read(tmp_path / "h.log.old") == "before\nafter\n"


def test_a_daily_rotation_it_may_not_do_keeps_the_file(tmp_path, monkeypatch):
    log = DailyLogFile("d.log", str(tmp_path))
    log.write("today\n")
    _no_write_access(monkeypatch)
    with pytest.raises(PermissionError):
        log.rotate()
    log.write("still here\n")
    log.close()
    assert sorted(os.listdir(tmp_path)) == ["d.log"]
    assert read(tmp_path / "d.log") == "today\nstill here\n"


def test_handler_size_accounts_for_an_existing_file(tmp_path):
    (tmp_path / "h.log").write_text("a" * 95 + "\n")
    handler = RotatingLogHandler(str(tmp_path / "h.log"), maxBytes=100, backupCount=1)
    handler.write("next line\n")
    handler.close()
    assert read(tmp_path / "h.log") == "next line\n"
    assert read(tmp_path / "h.log.1") == "a" * 95 + "\n"


class _FullStream(io.StringIO):
    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_is_reported_once_and_logging_goes_on(tmp_path, capsys):
    handler = RotatingLogHandler(str(tmp_path / "h.log"), maxBytes=0)
    real = handler.stream
    handler.stream = _FullStream()
    report_errors_once(handler, "h.log")
    logger = logging.Logger("test.full")
    logger.addHandler(handler)
    for number in range(3):
        logger.error("lost %d", number)  # never raises
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "logging to h.log failed: OSError: [Errno 28] No space left on device" in err
    handler.stream = real
    logger.error("space again")
    handler.close()
    assert read(tmp_path / "h.log") == "space again\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_dev_full_never_crashes(capsys):
    # (Rotation is kept off here: the regular-file guard is tested on a FIFO, never on /dev.)
    handler = report_errors_once(RotatingLogHandler("/dev/full", maxBytes=0), "/dev/full")
    logger = logging.Logger("test.devfull")
    logger.addHandler(handler)
    for number in range(5):
        logger.error("line %d", number)
    handler.close()
    assert capsys.readouterr().err.count("No space left on device") == 1


def test_daily_logfile_rotates_on_a_new_day_to_a_dated_name(tmp_path):
    log = DailyLogFile("day.log", str(tmp_path))
    log.write("yesterday\n")
    handler = log.handler
    dated = handler.rotated_name()
    assert dated == str(tmp_path / ("day.log." + time.strftime("%Y-%m-%d")))
    assert not log.shouldRotate()
    handler.rolloverAt = int(time.time()) - 1  # midnight has passed
    assert log.shouldRotate()
    log.write("today\n")
    log.close()
    rotated = [name for name in os.listdir(tmp_path) if name != "day.log"]
    assert len(rotated) == 1 and rotated[0].startswith("day.log.")
    assert read(tmp_path / rotated[0]) == "yesterday\n"
    assert read(tmp_path / "day.log") == "today\n"


def test_daily_logfile_manual_rotate_never_clobbers_todays_file(tmp_path):
    log = DailyLogFile("day.log", str(tmp_path))
    log.write("first\n")
    log.rotate()
    log.write("second\n")
    log.rotate()  # today's dated file exists: nothing is lost
    log.write("third\n")
    log.close()
    dated = tmp_path / ("day.log." + time.strftime("%Y-%m-%d"))
    assert read(dated) == "first\n"
    assert read(tmp_path / "day.log") == "second\nthird\n"


def test_daily_logfile_keeps_at_most_max_rotated(tmp_path):
    for day in ("2020-01-01", "2020-01-02", "2020-01-03"):
        (tmp_path / f"day.log.{day}").write_text(day + "\n")
    log = DailyLogFile("day.log", str(tmp_path), maxRotatedFiles=2)
    log.write("now\n")
    log.handler.rolloverAt = int(time.time()) - 1
    log.write("next\n")
    log.close()
    rotated = sorted(name for name in os.listdir(tmp_path) if name != "day.log")
    assert len(rotated) == 2 and "day.log.2020-01-01" not in rotated and "day.log.2020-01-02" not in rotated


def test_daily_logfile_reopens_after_an_external_move_and_pickles(tmp_path):
    log = DailyLogFile("day.log", str(tmp_path))
    log.write("a\n")
    os.rename(tmp_path / "day.log", tmp_path / "moved")
    log.rotate()
    log.write("b\n")
    copy = pickle.loads(pickle.dumps(log))
    log.close()
    copy.write("c\n")
    copy.close()
    assert read(tmp_path / "moved") == "a\n"
    assert read(tmp_path / "day.log") == "b\nc\n"


def test_size_rotation_counts_bytes_so_non_ascii_lines_never_overshoot(tmp_path):
    log = LogFile("app.log", str(tmp_path), rotateLength=100, maxRotatedFiles=5)
    for number in range(6):
        log.write(f"{number} " + "\u00e9" * 29 + "\n")  # 61 bytes, 32 characters: one line per file
    log.close()
    names = sorted(os.listdir(tmp_path))
    assert names == ["app.log", "app.log.1", "app.log.2", "app.log.3", "app.log.4", "app.log.5"]
    assert all(os.path.getsize(tmp_path / name) == 61 for name in names)
    assert read(tmp_path / "app.log").startswith("5 ")


def test_the_running_size_is_the_files_size_in_bytes(tmp_path):
    handler = RotatingLogHandler(str(tmp_path / "h.log"), maxBytes=10_000, backupCount=1)
    for text in ("plain ascii\n", "caf\u00e9 \u20ac \U0001f600\n", "undecodable \udcff\n"):
        handler.write(text)
        assert handler.size == os.path.getsize(tmp_path / "h.log")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "\u00e9" * 5000, (), None)
    handler.setFormatter(logging.Formatter("%(message)s"))
    assert handler.shouldRollover(record)  # 10,001 bytes on top of the rest, though 5,001 characters
    handler.close()
