"""Waking idle workers without shared locks.

Each worker listens on a Linux abstract-namespace datagram socket named after the campaign and its
worker id. Whoever changes the store sends one byte to every worker; an idle worker sleeps in
select() until a byte arrives or the next time-based event (a retry_at, a cooldown end) is due.
A process killed at any moment cannot leave a lock behind, which a multiprocessing Condition or
Event could (their internal lock would stay held by the dead process).
"""
from __future__ import annotations

import hashlib
import select
import socket

WAKE, STOP, STOP_NOW = b"w", b"s", b"k"


def _address(campaign_root: str, worker_id: str) -> bytes:
    digest = hashlib.sha1(campaign_root.encode()).hexdigest()[:16]
    return b"\0postdeck-" + digest.encode() + b"-" + worker_id.encode()


class Waker:
    def __init__(self, campaign_root: str, worker_id: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(_address(campaign_root, worker_id))
        self.sock.setblocking(False)

    def wait(self, timeout: float | None) -> bytes:
        """Sleep until a message or the timeout; return every byte received (b'' on timeout)."""
        if timeout is not None and timeout <= 0:
            timeout = 0
        ready, _, _ = select.select([self.sock], [], [], timeout)
        return self.drain() if ready else b""

    def drain(self) -> bytes:
        got = b""
        while True:
            try:
                got += self.sock.recv(64)
            except (BlockingIOError, InterruptedError):
                return got

    def close(self) -> None:
        self.sock.close()


def send(campaign_root: str, worker_ids, message: bytes = WAKE) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        for worker_id in worker_ids:
            try:
                sock.sendto(message, _address(campaign_root, str(worker_id)))
            except OSError:
                pass  # that worker is gone or its queue is full: it is awake anyway
    finally:
        sock.close()
