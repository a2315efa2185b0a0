# The shutdown save interrupted (tests/test_tap_e2e.py): with SLOW_SAVE_MARK set, the save writes
# the header to its temporary file, creates the file SLOW_SAVE_MARK, then waits (up to a minute)
# before writing the rest: time for a second SIGTERM, or a SIGKILL, to reach it mid-save.
import os
import time

from twistdlite import service
from twistdlite.launch import persist

MARK = os.environ.get("SLOW_SAVE_MARK")

if MARK:
    write_all = persist._write_all

    def slow_write(fd, chunks):
        write_all(fd, chunks[:1])
        open(MARK, "w").close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.01)
        write_all(fd, chunks[1:])

    persist._write_all = slow_write

application = service.Application("slowsave")
