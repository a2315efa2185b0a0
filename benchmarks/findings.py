"""What profiling found for each missed target, shown in BENCHMARKS.md next to the miss.

Keys are the target ids the benchmark modules give (``Table.target``/``Table.require``).
Each entry says the reason found (and with which tool), then the fix made or proposed.
A miss with no entry is reported as "not analysed yet". The profiling was done on
2026-11-22 and again on 2026-12-01 (after the fixes), on machines of the kind the report
describes; the figures quoted say which run they come from.
"""

_STARTUP = (
    "**Reason** (`-X importtime` of both servers — the table's note lists the current top items — "
    "cProfile of `twistdlite -noy`, and interleaved timings of import-only commands): the bare script's "
    "start-up is nearly all the interpreter plus `import asyncio`; twistdlite pays that plus its launcher. "
    "**Fixes made** (2026-12-01, commit ae4205a, on the findings of 2026-11-22): `twistdlite.launch.persist` "
    "no longer imports pickle, json, hashlib/_hashlib and hmac unless a `.tap` is saved, loaded or signed; "
    "`Options`, the address objects, `PidStatus` and `TapHeader` are plain `__slots__` classes instead of "
    "dataclasses (whose creation execs generated code at import); the debugging wrapper is imported only "
    "for `-b`/`--profile`/`--spew`. In four runs on 2026-12-01 that took the asyncio start-up from "
    "1.56× to 1.29×–1.40× the bare script and uvloop's from 1.48× to 1.27×–1.36×: on or near the line, "
    "and which side of it a run lands on is the machine (the bare script's own min and max span ±20% "
    "within one run). **What is left**: click is now the largest single item (its `click.types` pulls in uuid → "
    "platform and datetime, and every short option such as `-noy` is first tried as a long one, whose "
    "`NoSuchOption` imports difflib); then the launcher modules (~0.3 ms each) and the API modules the "
    "`.tac` imports. 1.3× of the bare script is about bare + 25 ms. **Fix proposed, not made**: a fast "
    "path that parses the common `-noy FILE` / `-y FILE` forms without importing click; the design makes "
    "click the CLI, so that is the lead's call (or a target of ~1.4× for uvloop)."
)

_STARTUP_VS_TWISTD = (
    "**Reason**: the same launcher weight as in the target against the bare script. The reference "
    "matters: plain Twisted's twistd (what the `bench` extra installs) is ready in ~190–230 ms here, so "
    "0.4× is ~80–90 ms — within ~1.1× of the bare asyncio script, below what any launcher reaches that "
    "also imports click; with Twisted's `tls` extra installed twistd took ~272 ms and twistdlite's ratio "
    "was 0.43× before the 2026-12-01 fixes. **Fix**: the start-up fixes above are made (0.55× "
    "to 0.48×–0.53× in the runs of 2026-12-01); the click-free fast path proposed there is what would "
    "remain."
)

_MEMORY_VS_TWISTD = (
    "**Reason**: plain Twisted's twistd holds ~32.5 MiB here; 0.7× of that is 22.8 MiB, while the bare "
    "asyncio script alone holds 20.2 MiB (leaving 2.6 MiB for all that twistdlite adds) and the bare script "
    "on uvloop 22.9 MiB, already over the line. "
    "**Fix made** (2026-12-01, ae4205a): persist, hashlib/libcrypto, pickle and json are loaded only when "
    "a `.tap` is handled (1.4 MiB): asyncio went from 0.75× to 0.71× (and from 1.21× to 1.14× the bare "
    "script, now met). What is left is click (~1.7 MiB); the uvloop reactor (uvloop's own 2.7 MiB) "
    "cannot reach 0.7× of plain Twisted."
)

_MEMORY = (
    "**Reason** (RSS of `python -c 'import …'` for each added piece): over the bare script's 20 MiB, "
    "click adds 1.7 MiB and the launcher modules 0.8 MiB. **Fix made** (2026-12-01, ae4205a): persist, "
    "hashlib/libcrypto, pickle and json only when a `.tap` is handled (−1.4 MiB), which met the target "
    "(1.14× in the run of 2026-12-01)."
)

_DAEMON = (
    "**Reason** (strace -f -tt of `twistdlite -y`, and this table's *serving* rows): what the launching "
    "command waits for is the foreground start-up plus detaching. **Fixes made**: the launching command "
    "leaves with `os._exit(0)` once READY is read (f3f3d60), and the start-up fixes of 2026-12-01 "
    "(ae4205a): from 0.59× to 0.45×–0.60× in three full runs on 2026-12-01 — on the line, with this "
    "machine's spread (twistd's own min and max span 180–320 ms within one run). What is left is the "
    "start-up entry's: click."
)

_ECHO_VS_TWISTD = (
    "**Reason**: twistdlite on uvloop sits close to the 2× line, and on this shared machine the ratio "
    "moves with the run: 2.12×, 2.65×, 2.03× and 2.22× in four runs on 2026-12-01 (1.87–2.23× on 2026-11-22). "
    "The server's own cost per request (the *server CPU per request* table) is steadier, about 0.4× "
    "twistd's. **Fix made**: the `LineReceiver` fast path (see the entry for the hand-written server)."
)

_ECHO_VS_BARE = (
    "**Reason** (py-spy of the server under load, and `timeit` of one 64-byte line): the system calls "
    "dominate both servers; twistdlite adds the protocol calls Twisted's API implies (the adapter's "
    "`data_received`, `dataReceived`, `lineReceived`, `sendLine`): 745 ns a line through the adapter "
    "and `LineReceiver` against 375 ns for the hand-written `split` loop, of a ~8 µs request. **Fix made** "
    "(2026-12-01, ae4205a): a fast path at the top of `LineReceiver.dataReceived` for a chunk that is "
    "exactly one line with nothing buffered (1.19 → ~0.66 µs a line), with tests of its re-entrant, "
    "paused, raw-mode and over-long cases. With it the ratio was 0.82×, 0.96×, 0.97× and 0.93× on asyncio "
    "and 0.93×, 0.94×, 0.98× and 0.92× on uvloop in four runs on 2026-12-01 (0.845× and 0.87× before); the spread "
    "between runs is the machine (see min and max), not the code."
)

FINDINGS: dict = {
    "startup.asyncio.vs-bare": _STARTUP,
    "startup.uvloop.vs-bare": _STARTUP,
    "startup.asyncio.vs-twistd": _STARTUP_VS_TWISTD,
    "startup.uvloop.vs-twistd": _STARTUP_VS_TWISTD,
    "memory.asyncio.vs-bare": _MEMORY,
    "memory.uvloop.vs-bare": _MEMORY,
    "memory.asyncio.vs-twistd": _MEMORY_VS_TWISTD,
    "memory.uvloop.vs-twistd": _MEMORY_VS_TWISTD,
    "daemon.vs-twistd": _DAEMON,
    "echo.uvloop.vs-twistd": _ECHO_VS_TWISTD,
    "echo.asyncio.vs-twistd": _ECHO_VS_TWISTD,
    "echo.asyncio.vs-bare": _ECHO_VS_BARE,
    "echo.uvloop.vs-bare": _ECHO_VS_BARE,
}

NOTES = """
- **Which Twisted.** The reference is the twistd the run finds (the machine table says which, and whether
  Twisted's `tls` extra is installed). The `bench` extra installs plain Twisted, the lighter and so
  stricter reference. Run against Twisted with its `tls` extra (/work/venv-tw, 2026-11-22, same
  machine, `--only lifecycle`): twistd start-up 272 ms, RSS 44.9 MiB, `-oy` daemon start 281 ms; there
  twistdlite's ratios were 0.43× (start-up, target 0.4×), 0.54× (memory, target 0.7×) and 0.49×
  (daemon start, target 0.5×).
- **How the subjects are run.** Every server is a separate process started from this run's Python
  environment (`twistdlite` is its console script), on a port chosen just before; the bare script and
  the load generator use the same interpreter. `PYTHONDONTWRITEBYTECODE` is dropped for the spawned
  processes and round 0 of each start-up measurement is a warm-up, so every subject starts from `.pyc`
  files as an installed package would.
- **Stop (report only).** After removing its pidfile, twistdlite's daemon spends ~20 ms in interpreter
  finalization (strace shows no system call between the pidfile's `unlink` and `exit_group`); twistd
  re-raises SIGTERM on itself and dies at once. Proposed to the lead: end the daemon with `os._exit`
  once logging is flushed and closed (skipping interpreter teardown), or re-raise the signal as twistd
  does — either changes whether `atexit` handlers of the application run, so it is a design choice.
"""
