# Daemon-mode tests (tests/test_daemon_*.py): an application built from the environment.
# DAEMON_SERVICES="record:a,listener:0,record:b" (see daemon_services.build);
# DAEMON_UID / DAEMON_GID set the Application's uid/gid; DAEMON_REFUSE_DROP=1 makes the
# kernel's answer to setgroups/initgroups "permission denied" (a refused privilege drop).
import os

import daemon_services

from twistdlite import service

if os.environ.get("DAEMON_REFUSE_DROP"):
    def refuse(*args):
        raise PermissionError(1, "Operation not permitted")

    os.setgroups = os.initgroups = refuse

uid = os.environ.get("DAEMON_UID")
gid = os.environ.get("DAEMON_GID")
application = service.Application("daemontest", uid=int(uid) if uid else None, gid=int(gid) if gid else None)
daemon_services.build(os.environ.get("DAEMON_SERVICES", "record:a,listener:0"), application)
