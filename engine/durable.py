"""Durable whole-file writes: temp file in the same folder, fsync, os.replace, fsync the folder.
A reader that opens the path sees either the old file or the new one, never a half-written one."""
from __future__ import annotations

import os
import uuid
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """`durable=False` keeps the all-or-nothing replace but skips the fsyncs: for files that are
    rewritten every few seconds and worthless after a power cut (heartbeats)."""
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Only our own temp file is removed, never the operator's file.
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def append_durable(path: Path, data: bytes) -> None:
    """Append and fsync (the ledger). A new file's folder entry is made durable too."""
    created = not path.exists()
    with open(path, "ab") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if created:
        fsync_dir(path.parent)
