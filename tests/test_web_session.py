"""Request.getSession and Session in process: the cookie (named as Twisted names it), finding the session
again, idle expiry on the site's reactor (a task.Clock here), expire/notifyOnExpire, secure sessions,
components, and sessions left out of a saved site."""

from __future__ import annotations

import logging
import pickle
import re

from netsupport import run, until
from twistdlite import task
from twistdlite.web import resource, server
from twistdlite.web._session import cookie_name
from websupport import WebTransport, exchange, get, one

UID = re.compile(r"TWISTED_SESSION=([0-9a-f]{64}); Path=/; HttpOnly$")


class Counter(resource.Resource):
    """Counts a session's visits."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.sessions = []

    def render_GET(self, request):
        session = request.getSession()
        assert request.getSession() is session and request.session is session  # once per request
        self.sessions.append(session)
        visits = session.sessionNamespaces["visits"] = session.sessionNamespaces.get("visits", 0) + 1
        return b"%s %d" % (session.uid, visits)


async def visit(site, cookie=None):
    headers = (b"Cookie: " + cookie,) if cookie else ()
    return one(await exchange(site, get(b"/", *headers)))


def test_a_session_is_made_with_twisteds_cookie_and_found_again_by_it():
    async def main():
        counter = Counter()
        site = server.Site(counter, reactor=task.Clock())
        first = await visit(site)
        uid = UID.match(first.headers["set-cookie"]).group(1).encode()  # no Expires: a browser-session cookie
        assert first.body == uid + b" 1" and list(site.sessions) == [uid] and site.counter == 1
        again = await visit(site, b"other=1; TWISTED_SESSION=" + uid)
        assert again.body == uid + b" 2" and "set-cookie" not in again.headers
        assert counter.sessions[0] is counter.sessions[1] and site.getSession(uid) is counter.sessions[0]
        stranger = await visit(site, b"TWISTED_SESSION=" + b"0" * 64)  # unknown (or forged): a new one
        assert stranger.body.endswith(b" 1") and len(site.sessions) == 2 and UID.match(stranger.headers["set-cookie"])

    run(main())


def test_a_session_expires_after_its_timeout_of_idleness_and_tells_who_asked():
    async def main():
        clock = task.Clock()
        counter = Counter()
        site = server.Site(counter, reactor=clock)
        uid = (await visit(site)).body.split()[0]
        session = site.sessions[uid]
        ended = []
        session.notifyOnExpire(lambda: ended.append("first"))
        session.notifyOnExpire(lambda: ended.append("second"))
        clock.advance(800)
        assert (await visit(site, b"TWISTED_SESSION=" + uid)).body == uid + b" 2"  # touched at 800
        clock.advance(850)  # 1650: past 900 since it was made, not since it was last used
        assert site.sessions == {uid: session} and ended == []
        clock.advance(60)  # 1710: 910 s idle
        assert site.sessions == {} and ended == ["first", "second"] and clock.getDelayedCalls() == []
        fresh = await visit(site, b"TWISTED_SESSION=" + uid)
        assert fresh.body.endswith(b" 1") and UID.match(fresh.headers["set-cookie"]).group(1).encode() != uid

    run(main())


def test_expire_logs_out_once_and_cancels_the_timer():
    async def main():
        clock = task.Clock()
        site = server.Site(Counter(), reactor=clock)
        uid = (await visit(site)).body.split()[0]
        session = site.sessions[uid]
        ended = []
        session.notifyOnExpire(lambda: ended.append(1))
        session.notifyOnExpire(lambda: 1 / 0)  # a broken callback is logged; the others still run
        session.notifyOnExpire(lambda: ended.append(2))
        session.expire()
        session.expire()
        assert ended == [1, 2] and site.sessions == {} and clock.getDelayedCalls() == []
        assert (await visit(site, b"TWISTED_SESSION=" + uid)).body.endswith(b" 1")  # logged out: a new session

    run(main())


def test_at_most_max_sessions_live_the_least_recently_used_expiring_to_make_room(caplog):
    async def main():
        site = server.Site(Counter(), reactor=task.Clock(), maxSessions=3)
        uids = [(await visit(site)).body.split()[0] for _ in range(3)]
        ended = []
        for uid in uids:
            site.sessions[uid].notifyOnExpire(lambda uid=uid: ended.append(uid))
        assert (await visit(site, b"TWISTED_SESSION=" + uids[0])).body == uids[0] + b" 2"  # used: now the newest
        fourth = (await visit(site)).body.split()[0]
        assert ended == [uids[1]] and list(site.sessions) == [uids[2], uids[0], fourth]
        fifth = (await visit(site)).body.split()[0]
        assert ended == [uids[1], uids[2]] and list(site.sessions) == [uids[0], fourth, fifth]
        assert (await visit(site, b"TWISTED_SESSION=" + uids[1])).body.endswith(b" 1")  # it was logged out

    with caplog.at_level(logging.WARNING, logger="twistdlite.web"):
        run(main())
    full = [r.getMessage() for r in caplog.records if "maxSessions" in r.getMessage()]
    assert full == ["3 sessions alive, the most Site.maxSessions allows: expiring the least recently used to make "
                    "room for new ones"]  # once, not at every eviction
    assert server.Site(Counter()).maxSessions == 100000 and server.Site(Counter(), maxSessions=None).maxSessions is None


def test_the_session_timer_runs_on_the_real_reactor_by_default():
    class Brief(server.Session):
        sessionTimeout = 0.05

    async def main():
        site = server.Site(Counter())
        site.sessionFactory = Brief
        uid = (await visit(site)).body.split()[0]
        ended = []
        site.sessions[uid].notifyOnExpire(lambda: ended.append(uid))
        await until(lambda: ended, what="the session to expire")
        assert site.sessions == {}

    run(main())


class SecureTransport(WebTransport):
    def get_extra_info(self, name, default=None):
        return object() if name == "sslcontext" else default


def test_over_https_the_session_is_a_secure_one_unless_forced_not_to_be():
    seen = []

    class Both(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            seen.append((request.getSession(), request.getSession(forceNotSecure=True), request.session))
            return b""

    async def main():
        site = server.Site(Both(), reactor=task.Clock())
        channel = site.buildProtocol(None)
        transport = SecureTransport()
        transport.proto = channel
        channel.makeConnection(transport)
        channel.dataReceived(get(b"/"))
        await until(lambda: transport.data, what="the answer")
        cookies = [line for line in bytes(transport.data).split(b"\r\n") if line.startswith(b"Set-Cookie: ")]
        secure, plain, current = seen[0]
        assert secure is not plain and current is secure
        assert cookies == [b"Set-Cookie: TWISTED_SECURE_SESSION=" + secure.uid + b"; Path=/; Secure; HttpOnly",
                           b"Set-Cookie: TWISTED_SESSION=" + plain.uid + b"; Path=/; HttpOnly"]

    run(main())


def test_components_of_a_session_and_the_cookie_name_under_a_site_path():
    class ICart:
        """An interface, as a plain class here."""

    carts = []

    class Shop(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            session = request.getSession()
            if session.getComponent(ICart) is None:
                session.setComponent(ICart, [])
            cart = request.getSession(ICart)
            cart.append(request.args[b"item"][0])
            carts.append(cart)
            return b", ".join(cart)

    async def main():
        site = server.Site(Shop(), reactor=task.Clock())
        first = one(await exchange(site, get(b"/?item=tea")))
        uid = UID.match(first.headers["set-cookie"]).group(1).encode()
        second = one(await exchange(site, get(b"/?item=milk", b"Cookie: TWISTED_SESSION=" + uid)))
        assert second.body == b"tea, milk" and carts[0] is carts[1]
        site.sessions[uid].unsetComponent(ICart)
        assert site.sessions[uid].getComponent(ICart, "none") == "none"

    run(main())
    assert cookie_name(False, [b"app", b"v1"]) == b"TWISTED_SESSION_app_v1"
    assert cookie_name(True, []) == b"TWISTED_SECURE_SESSION"


class Plain(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return request.getSession().uid


def test_a_saved_site_keeps_no_sessions():
    async def main():
        site = server.Site(Plain(), reactor=None)
        await visit(site)
        assert len(site.sessions) == 1
        restored = pickle.loads(pickle.dumps(site))
        assert restored.sessions == {} and len(site.sessions) == 1
        for session in list(site.sessions.values()):
            session.expire()

    run(main())
