# The howto's .tac for its own echo service: twistdlite -noy echoservice.tac
# (the port is $ECHO_PORT, 7001 by default). Twisted's version imports
# twisted.application.service; only that import changed.
import os

from twistdlite import service
from porting_echo import EchoService

application = service.Application("echo")
EchoService(int(os.environ.get("ECHO_PORT", "7001"))).setServiceParent(application)
