"""Log files under .postdeck/logs/: one per worker and one for the supervisor, rotated. Lines are
`YYYY-mm-dd HH:MM:SS LEVEL message`; lines about a job name its job_id so the console can show a
job's own lines."""
from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"
MAX_BYTES = 5 * 1024 * 1024
BACKUPS = 3


def file_logger(name: str, path: Path, also_stderr: bool = False,
                library: bool = False) -> logging.Logger:
    """A logger writing to `path`. `library`: the backends' own messages (Geelark retries, adb,
    Appium: the "postdeck.*" loggers) go to the same file, for the one process that asks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    handler = RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
    logger.addHandler(handler)
    if also_stderr:
        err = logging.StreamHandler()
        err.setFormatter(logging.Formatter(FORMAT, DATEFMT))
        logger.addHandler(err)
    if library:
        shared = logging.getLogger("postdeck")
        shared.setLevel(logging.INFO)
        shared.addHandler(handler)
    return logger
