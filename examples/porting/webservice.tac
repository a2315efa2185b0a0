# The howto's first .tac: a web server serving the files of the current
# directory (port $WEB_PORT, 8080 by default). Twisted's version imports
# twisted.application and twisted.web; only those imports changed.
import os

from twistdlite import internet, service
from twistdlite.web import server, static


def getWebService():
    fileServer = server.Site(static.File(os.getcwd()))
    return internet.TCPServer(int(os.environ.get("WEB_PORT", "8080")), fileServer, interface="127.0.0.1")


application = service.Application("Demo application")
service = getWebService()
service.setServiceParent(application)
