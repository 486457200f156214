"""The live tree of a run with many tasks stays within the terminal.

flowmake runs under a real pseudo-terminal of a few lines; the bytes it writes
are replayed through a minimal terminal model (line feeds, cursor-up, and the
screen's last line, past which a terminal scrolls). The tree must never make
the screen scroll while it is live: every frame, and the newline that ends the
last one, fit in the terminal's height, however many tasks the run has.
"""

from __future__ import annotations

import re
from typing import Tuple

from conftest import Project
from test_cli_commands import run_in_pty, strip_ansi

ROWS, COLS = 12, 80
SINGLES, VARIANTS = 150, 120

# Escape sequences that move the cursor up (CSI n A), any other CSI sequence, and the cursor shown again.
_TOKEN = re.compile(r"\n|\x1b\[(\d*)A|\x1b\[[0-?]*[ -/]*[@-~]")
SHOW_CURSOR = "\x1b[?25h"  # rich's Live hides the cursor while live and shows it when it stops


def many_tasks(project: Project, failing: int = 0) -> None:
    """SINGLES tasks alone in their group, then a matrix of VARIANTS; the first `failing` singles fail."""
    parts = ['[flow]\nname = "many"\n']
    for i in range(SINGLES):
        run = "exit 3" if i < failing else f"touch o/t{i}"
        parts.append(f'[tasks.t{i}]\noutputs = ["o/t{i}"]\nrun = "{run}"\n')
    variants = ", ".join(f'"v{i}"' for i in range(VARIANTS))
    parts.append(f'[tasks.m]\nmatrix = {{ v = [{variants}] }}\noutputs = ["o/m-{{v}}"]\nrun = "touch o/m-{{v}}"\n')
    project.write("Flowfile.toml", "\n".join(parts))
    project.write("o/.keep", "")


def run_on_small_pty(project: Project, *args: str, timeout: float = 120.0) -> Tuple[int, str]:
    env = {"NO_COLOR": None, "COLUMNS": None, "LINES": None}
    return run_in_pty(project, *args, env=env, timeout=timeout, rows=ROWS, cols=COLS)


def replay(screen: str, rows: int) -> Tuple[int, int, int]:
    """(the lowest row the cursor reached, lines scrolled off the top, frames redrawn) for `screen` from row 0."""
    row = lowest = scrolled = redraws = 0
    for match in _TOKEN.finditer(screen):
        if match.group(0) == "\n":
            row += 1
            if row >= rows:  # the terminal scrolls: the top line is lost
                scrolled += 1
                row = rows - 1
        elif match.group(0).endswith("A"):
            row = max(row - int(match.group(1) or 1), 0)
            redraws += 1
        lowest = max(lowest, row)
    return lowest, scrolled, redraws


def live_part(screen: str) -> str:
    """What was written while the tree was live, and the newline that ends its last frame."""
    stop = screen.rfind(SHOW_CURSOR)
    assert stop > 0, "the live tree never stopped (or never started)"
    return screen[:stop]


def test_the_tree_of_hundreds_of_tasks_never_scrolls_a_small_terminal(project: Project) -> None:
    many_tasks(project)
    code, screen = run_on_small_pty(project, "run", "-j", "2", "--progress", "tree")
    assert code == 0, strip_ansi(screen)[-2000:]
    lowest, scrolled, redraws = replay(live_part(screen), ROWS)
    assert redraws > 0, "the tree was never redrawn: the run was too short to test anything"
    assert scrolled == 0 and lowest <= ROWS - 1, f"the live tree reached row {lowest} of {ROWS} and scrolled {scrolled}"
    text = strip_ansi(screen)
    assert f"many  {SINGLES + VARIANTS}/{SINGLES + VARIANTS}" in text  # the final frame counts every task
    assert "more tasks" in text  # calm tasks were folded into a count, not listed
    assert text.rstrip().splitlines()[-1].startswith(f"✓ done: {SINGLES + VARIANTS} ok")


def test_more_failed_tasks_than_lines_fill_the_screen_but_never_scroll_it(project: Project) -> None:
    many_tasks(project, failing=2 * ROWS)  # failed tasks stay listed: more of them than the screen has lines
    code, screen = run_on_small_pty(project, "run", "-j", "2", "-k", "--progress", "tree")
    assert code == 1, strip_ansi(screen)[-2000:]
    live = live_part(screen)
    lowest, scrolled, _ = replay(live, ROWS)
    assert scrolled == 0 and lowest <= ROWS - 1, f"the live tree reached row {lowest} of {ROWS} and scrolled {scrolled}"
    last_frame = strip_ansi(live[live.rfind("\x1b[1A") + len("\x1b[1A"):]).strip("\r\n\x1b[2K").splitlines()
    assert len(last_frame) == ROWS - 1, last_frame  # the whole screen but the cursor's line
    assert re.search(r"✗ t0\s+exit (code )?3", "\n".join(last_frame)), last_frame
    assert re.search(rf"… \d+ more tasks: {SINGLES + VARIANTS - 2 * ROWS} ok, \d+ failed$", last_frame[-1]), last_frame
    after = strip_ansi(screen[screen.rfind(SHOW_CURSOR):])
    assert re.search(r"^--- t0 failed \(exit (code )?3\)", after, re.M), after  # held back while live, written after
