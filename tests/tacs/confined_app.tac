# The confinement tests (tests/test_confinement_e2e.py): an echo server on TCP (127.0.0.1, a free
# port) and on the UNIX socket echo.sock in the run directory, whose shutdown .tap can be saved.
import echo_services

from twistdlite import internet, service

application = service.Application("confined")
internet.TCPServer(0, echo_services.factory(), interface="127.0.0.1").setServiceParent(application)
internet.UNIXServer("echo.sock", echo_services.factory()).setServiceParent(application)
