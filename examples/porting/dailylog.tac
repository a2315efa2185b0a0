# The howto's custom log: a DailyLogFile through the Application's ILogObserver
# component (in $LOG_DIR, /tmp by default), with the echo service to log about.
# Twisted's version imports twisted.application.service, twisted.python.log and
# twisted.python.logfile; only those imports changed.
import os

from twistdlite.service import Application
from twistdlite.log import ILogObserver, FileLogObserver
from twistdlite.logfile import DailyLogFile
from porting_echo import EchoService

application = Application("myapp")
logfile = DailyLogFile("my.log", os.environ.get("LOG_DIR", "/tmp"))
application.setComponent(ILogObserver, FileLogObserver(logfile).emit)
EchoService(int(os.environ.get("ECHO_PORT", "7001"))).setServiceParent(application)
