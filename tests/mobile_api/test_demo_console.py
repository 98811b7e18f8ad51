"""On a terminal the demo's summary is redrawn in place, and messages appear above it."""

from __future__ import annotations

import io
import random
import re

from mobile_api.demo.run import Console
from mobile_api.demo.simulator import Fleet, SimConfig, SimStats


def screen(output: str) -> list[str]:
    """What a terminal shows after ``output`` (handles CR, LF, cursor up and erase-to-end)."""
    rows: list[str] = [""]
    row = col = 0
    for token in re.findall(r"\x1b\[\d*[AK]|\r|\n|[^\x1b\r\n]+", output):
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            if row == len(rows):
                rows.append("")
        elif token.endswith("A"):
            row -= int(token[2:-1] or 1)
        elif token.endswith("K"):
            rows[row] = rows[row][:col]
        else:
            line = rows[row].ljust(col)
            rows[row] = line[:col] + token + line[col + len(token) :]
            col += len(token)
    return rows


def test_the_block_is_redrawn_in_place_and_a_message_goes_above_it() -> None:
    """Two refreshes and a message leave one message line, then one three-line summary."""
    stats = SimStats()
    fleet = Fleet("ws://unused", SimConfig(workers=3), stats, random.Random(1))
    out = io.StringIO()
    console = Console(out, fleet, stats, tty=True)
    console.show()
    stats.jobs_posted = 7
    console.show()
    console.say("work order for You: job_1")
    stats.offers = 12
    console.show(final=True)

    rows = [r for r in screen(out.getvalue()) if r]
    assert rows[0] == "work order for You: job_1"
    assert len(rows) == 4
    assert " now: 0 online = 0 available + 0 busy + 0 on a break" in rows[1]
    assert rows[2].startswith("so far: 7 jobs posted")
    assert "12 offers" in rows[2]
    assert rows[3].startswith("median: post->offer -")
