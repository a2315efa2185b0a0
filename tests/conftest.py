"""Test-session set-up: adopt orphaned daemons, and make sure no test leaves a process behind."""

from __future__ import annotations

import os
import signal

import pytest

from support import become_subreaper, is_gone

SUBREAPER = become_subreaper()


def _descendants() -> set:
    """PIDs whose parent is this process (daemons are adopted by us as subreaper)."""
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] not in ("Z", "X"):
            found.add(int(entry))
    return found


@pytest.fixture(autouse=True)
def no_process_left_behind():
    """Fail a test that leaves a live child or adopted daemon behind (and kill it)."""
    before = _descendants()
    yield
    left = _descendants() - before
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in left:
        for _ in range(200):
            if is_gone(pid):
                break
            import time
            time.sleep(0.01)
    assert not left, f"test left processes behind: {sorted(left)}"
