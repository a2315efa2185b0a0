"""``python -m twistdlite``: the same as the ``twistdlite`` command."""

from twistdlite.launch.cli import main

if __name__ == "__main__":
    main(prog_name="twistdlite")
