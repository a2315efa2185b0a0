# Twisted's howto service.tac, with its imports changed from twisted to twistdlite: serve the
# current directory over HTTP. Run with: twistdlite -noy examples/web_service.tac  (port 8080, or
# $WEB_PORT; 0 picks a free one), then open http://127.0.0.1:8080/. Needs: pip install 'twistdlite[web]'
import os

from twistdlite import internet, service
from twistdlite.web import server, static


def getWebService():
    """Return a service suitable for creating an application object.

    This service is a simple web server that serves files on port 8080 from
    underneath the current working directory.
    """
    # create a resource to serve static files
    fileServer = server.Site(static.File(os.getcwd()))
    return internet.TCPServer(int(os.environ.get("WEB_PORT", "8080")), fileServer)


# this is the core part of any tac file, the creation of the root-level
# application object
application = service.Application("Demo application")

# attach the service to its parent application
service = getWebService()
service.setServiceParent(application)
