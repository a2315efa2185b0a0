"""What profiling found for each missed target, shown in BENCHMARKS.md next to the miss.

Keys are the target ids the benchmark modules give (``Table.target``/``Table.require``).
Keep each entry to: the reason found (with the tool that showed it), then the fix made
or proposed. A miss with no entry is reported as "not analysed yet".
"""

FINDINGS: dict = {}

NOTES = ""
