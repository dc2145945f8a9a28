"""The one way the console writes a file that may hold a secret: created readable by its owner
only (0600), never wider, not even for a moment (the mode is given to open(2), not chmod'ed
after)."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str, *, exclusive: bool = False) -> Path:
    """Write `text` to `path` with mode 0600; `exclusive` refuses to replace an existing file."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path
