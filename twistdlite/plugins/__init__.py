"""The built-in plugins: ``twistdlite web`` and ``twistdlite portforward``.

Each public module here is one plugin, whose ``serviceMaker`` attribute the launcher
uses (see :mod:`twistdlite.launch.plugins`). Importing a plugin's module is cheap
(``twistdlite --help`` imports them all to show their descriptions): it defines only
the options and the service maker, and ``makeService`` imports the server it makes
from a private helper module (a name starting with ``_``, never taken for a plugin).
"""
