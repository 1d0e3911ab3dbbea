"""The phones panel: which worker drives which phone, its pid, Appium port and systemPort range,
what it is doing (job and account) and how old its heartbeat is."""
from __future__ import annotations

from textual.binding import Binding

from engine.runstate import (HEARTBEAT_EVERY_S, HEARTBEAT_LEASE_S, WORKER_BUSY_STATES,
                             WORKER_DEAD, WORKER_IDLE_STATES, Heartbeat)
from engine.status import worker_state

from .fmt import duration
from .live_table import Column, LiveTable, Row

COLUMNS = (
    Column("worker", "wkr", 3, right=True),
    Column("pid", "pid", 7, right=True),
    Column("phone", "phone", 12),
    Column("appium", "appium", 6, right=True, drop=2),
    Column("system_ports", "sysPorts", 9, drop=3),
    Column("state", "state", 10),
    Column("job", "job", 16, flex=True),
    Column("account", "account", 12),
    Column("heartbeat", "beat", 5, right=True),
)


def _state_cell(state: str):
    if state == WORKER_DEAD:
        return (state, "bad")
    if state in WORKER_BUSY_STATES:
        return (state, "busy")
    if state in WORKER_IDLE_STATES:
        return (state, "dim")
    return state


def worker_row(hb: Heartbeat, alive: bool, now: float) -> tuple[str, Row]:
    age = max(0.0, now - hb.at)
    beat = duration(age)
    if age > HEARTBEAT_LEASE_S:
        beat_cell = (beat, "bad")
    elif age > 3 * HEARTBEAT_EVERY_S:
        beat_cell = (beat, "warn")
    else:
        beat_cell = beat
    return hb.worker_id, (
        hb.worker_id, str(hb.pid), hb.phone or "-", str(hb.appium_port or ""), hb.system_ports,
        _state_cell(worker_state(hb, alive)), hb.job_id or "", hb.account or "", beat_cell)


def sort_key(worker_id: str):
    return (0, int(worker_id), "") if worker_id.isdigit() else (1, 0, worker_id)


class WorkersPanel(LiveTable):
    title = "Phones · workers"
    empty_text = "no workers: press s to start a run"
    BINDINGS = [Binding("enter", "select", "Job detail", id="worker-job-detail")]

    def __init__(self, **kwargs) -> None:
        super().__init__(COLUMNS, **kwargs)
