# Daemon-mode tests (tests/test_daemon_*.py): an application built from the environment.
# DAEMON_SERVICES="record:a,listener:0,record:b" (see daemon_services.build);
# DAEMON_UID / DAEMON_GID set the Application's uid/gid.
import os

import daemon_services

from twistdlite import service

uid = os.environ.get("DAEMON_UID")
gid = os.environ.get("DAEMON_GID")
application = service.Application("daemontest", uid=int(uid) if uid else None, gid=int(gid) if gid else None)
daemon_services.build(os.environ.get("DAEMON_SERVICES", "record:a,listener:0"), application)
