"""Files written whole or not at all: records, weights, checkpoints, caches and kept params files.

A reader never sees a torn file and a kill mid-write leaves the previous version whole: each
file is written to a temporary name beside it, flushed to disk, then renamed over it. The
temporary name is unique to the host, process and thread, so that two writers (two sweeps, or
a sweep taken over while its first holder still ran) never write one temporary file. Files get
the mode a plain open() gives (0666 less the umask), so that colleagues sharing a results
directory can read them; tempfile.mkstemp's 0600 would not.
"""
from __future__ import annotations

import os
import platform
import threading
from collections.abc import Callable
from pathlib import Path


def write_whole(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call write(tmp) to fill a temporary file beside path, then rename it over path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{platform.node()}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_whole(path, lambda tmp: tmp.write_text(text))
