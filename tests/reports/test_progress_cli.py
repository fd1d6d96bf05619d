"""`harness run` progress as a user sees it: a live line on a terminal (a real pty), plain
lines in a pipe (CI)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

HARNESS = Path(sys.executable).with_name("harness")
TWO = "matrix:\n  - name: q\n    flows: [selftest.clean_task, selftest.leak_task]\n"


def test_plain_lines_in_a_pipe(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/s.yaml").write_text(TWO)
    r = subprocess.run([str(HARNESS), "run", "--seed", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    lines = [x for x in r.stdout.splitlines() if x.startswith("[")]
    assert lines[0].startswith("[1/2 · none failed · ") and " PASS selftest.clean_task[none] (" in lines[0], lines
    assert lines[1].startswith("[2/2 · failed 1 · ") and " FAIL selftest.leak_task[none] (" in lines[1], lines
    assert "\r" not in r.stdout


def test_a_live_line_on_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/s.yaml").write_text(TWO)
    master, slave = os.openpty()
    proc = subprocess.Popen([str(HARNESS), "run", "--seed", "1"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # bounded read until the pty closes
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
    text = out.decode(errors="replace")
    assert proc.returncode == 1, text
    assert "\rnats-chaos 1/2 · none failed · " in text and "\rnats-chaos 2/2 · failed 1 · " in text, text
    assert "[1/2 ·" not in text  # no plain lines on a terminal
