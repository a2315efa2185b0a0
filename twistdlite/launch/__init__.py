"""The launcher: command line, loading, running (see ../shared/DESIGN.md, "The run, in order")."""
