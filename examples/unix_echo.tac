# Echo on a UNIX socket. Run with: twistdlite -noy examples/unix_echo.tac
# (then: nc -U echo.sock). ECHO_SOCKET names the socket file (default echo.sock in the
# run directory); it is created with mode 0660 and removed on shutdown.
import os

from twistdlite import internet, service

import echoserv

path = os.environ.get("ECHO_SOCKET", "echo.sock")
application = service.Application("unix_echo")
internet.UNIXServer(path, echoserv.EchoFactory(), mode=0o660).setServiceParent(application)
