"""`python -m <module> ARGS` as a child that reports its own peak resident memory at exit.

A child's `ru_maxrss` (os.wait4) counts the pages of the process it was forked from (pytest, a
benchmark holding a dataset), so the child reads its own `VmHWM` from /proc at exit and writes it
as the last line of its stderr; `peak_kib()` reads it back.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_WITH_PEAK = """
import runpy, sys
module = sys.argv[1]
sys.argv = [module, *sys.argv[2:]]
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
finally:
    peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
    sys.stderr.write("\\n" + peak[0])
"""


def argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-c", _WITH_PEAK, module, *args]


def start(module: str, *args: str) -> subprocess.Popen[bytes]:
    """The child, with stdout and stderr piped (read them with `communicate()`)."""
    return subprocess.Popen(
        argv(module, *args),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def peak_kib(stderr: str) -> int:
    found = re.search(r"VmHWM:\s+(\d+) kB", stderr)
    assert found is not None, stderr
    return int(found.group(1))


def run(module: str, *args: str) -> tuple[int, str, str, int]:
    """(exit status, stdout, stderr, peak RSS in KiB) of the child run to its end."""
    proc = start(module, *args)
    out, err = proc.communicate()
    return proc.returncode, out.decode(), err.decode(), peak_kib(err.decode())
