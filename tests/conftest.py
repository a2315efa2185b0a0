"""Test-session set-up: adopt orphaned daemons, and make sure no test leaves a process behind."""

from __future__ import annotations

import os
import signal

import pytest

from support import become_subreaper, children, is_gone

SUBREAPER = become_subreaper()


@pytest.fixture(autouse=True)
def no_process_left_behind():
    """Fail a test that leaves a live child or adopted daemon behind (and kill it)."""
    before = children()
    yield
    left = children() - before
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
