"""HTTP servers, mirroring ``twisted.web``: resources, sites, static files and WSGI.

    from twistdlite.web import server, static
    site = server.Site(static.File("/srv/www"))

Modules (each imported only when used; ``import twistdlite.web`` imports nothing):

* :mod:`twistdlite.web.resource` — ``Resource``, ``NoResource``, ``ErrorPage``;
* :mod:`twistdlite.web.server` — ``Site``, ``Request``, ``Session`` (``request.getSession()``), ``NOT_DONE_YET``;
* :mod:`twistdlite.web.static` — ``File`` (content types, listings, ranges, caching headers);
* :mod:`twistdlite.web.wsgi` — ``WSGIResource``;
* :mod:`twistdlite.web.util` — ``redirectTo``;
* :mod:`twistdlite.web.http` and :mod:`twistdlite.web.http_headers` — status codes, ``Headers``.

The HTTP/1.1 parser is httptools, an optional dependency: ``pip install 'twistdlite[web]'``.
"""
