"""twistdlite: a twistd-style launcher for long-running Python services, on asyncio.

Importing this package imports nothing else; the API lives in the submodules
(``twistdlite.service``, ``twistdlite.internet``, ``twistdlite.protocol``...).
"""

__version__ = "0.1.0"
