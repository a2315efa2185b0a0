# Run with: twistdlite -noy examples/reverse_app.tac   (then: telnet 127.0.0.1 2323, or nc -C 127.0.0.1 2323:
# the protocol's lines end with CRLF, which plain nc does not send)
from twistdlite import service
import reverse
application = service.Application("Reverser")
reverse.ReverserService().setServiceParent(application)
