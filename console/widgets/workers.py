"""The phones panel: which worker drives which phone, its pid, Appium port and systemPort range,
what it is doing (job and account) and how old its heartbeat is; and for every phone, whether it
is on and how long it was on today (Geelark bills each minute a cloud phone runs).

Workers come first; then every phone of the campaign that no listed worker drives, so a phone a
crash left on (it still bills) is on screen, not only in `--status --json`."""
from __future__ import annotations

from textual.binding import Binding

from engine.power import Power, PowerRecord
from engine.rules import Day
from engine.runstate import (HEARTBEAT_EVERY_S, HEARTBEAT_LEASE_S, WORKER_BUSY_STATES,
                             WORKER_DEAD, WORKER_IDLE_STATES, Heartbeat)
from engine.status import worker_state

from .fmt import duration
from .live_table import Cell, Column, LiveTable, Row

# On a narrow screen the highest `drop` goes first: ports, then the pid (the job detail and
# --status have it), then the account (the job names it); never the phone's power or on-time.
COLUMNS = (
    Column("worker", "wkr", 3, right=True),
    Column("pid", "pid", 7, right=True, drop=3),
    Column("phone", "phone", 12),
    Column("power", "power", 8),
    Column("on_today", "on today", 8, right=True),
    Column("appium", "appium", 6, right=True, drop=4),
    Column("system_ports", "sysPorts", 9, drop=5),
    Column("state", "state", 10),
    Column("job", "job", 16, flex=True),
    Column("account", "account", 12, drop=2),
    Column("heartbeat", "beat", 5, right=True),
)

# A phone's row is keyed apart from the workers' (a worker id is a number, a phone a name).
PHONE_KEY = "phone:"
POWER_TONES = {Power.ON: "busy", Power.STARTING: "info", Power.OFF: "dim"}
NO_POWER: tuple[Cell, Cell] = ("", "")


def phone_of_key(key: str) -> str | None:
    """The phone of a phone row's key; None for a worker's row."""
    return key[len(PHONE_KEY):] if key.startswith(PHONE_KEY) else None


def _state_cell(state: str):
    if state == WORKER_DEAD:
        return (state, "bad")
    if state in WORKER_BUSY_STATES:
        return (state, "busy")
    if state in WORKER_IDLE_STATES:
        return (state, "dim")
    return state


def power_cells(record: PowerRecord | None, now: float, day: Day) -> tuple[Cell, Cell]:
    """The power and on-today cells: the state in its tone, and today's on-time (empty when the
    phone was not on today, so the phones that cost something stand out)."""
    if record is None:
        return NO_POWER
    on = record.on_seconds_today(now, day)
    state = str(record.state)
    return (state, POWER_TONES.get(state, "dim")), duration(on) if on >= 1 else ""


def worker_row(hb: Heartbeat, alive: bool, now: float,
               power: tuple[Cell, Cell] = NO_POWER) -> tuple[str, Row]:
    age = max(0.0, now - hb.at)
    beat = duration(age)
    if age > HEARTBEAT_LEASE_S:
        beat_cell = (beat, "bad")
    elif age > 3 * HEARTBEAT_EVERY_S:
        beat_cell = (beat, "warn")
    else:
        beat_cell = beat
    return hb.worker_id, (
        hb.worker_id, str(hb.pid), hb.phone or "-", *power, str(hb.appium_port or ""),
        hb.system_ports, _state_cell(worker_state(hb, alive)), hb.job_id or "", hb.account or "",
        beat_cell)


def phone_row(record: PowerRecord, now: float, day: Day) -> tuple[str, Row]:
    """A phone no listed worker drives. On with nobody driving it, it bills for nothing: its
    state says so in the warning colour (a dead run, or a phone the backend could not stop)."""
    state: Cell = ("no worker", "warn") if record.running else ""
    return PHONE_KEY + record.phone, (
        "", "", record.phone, *power_cells(record, now, day), "", "", state, "", "", "")


def sort_key(worker_id: str):
    return (0, int(worker_id), "") if worker_id.isdigit() else (1, 0, worker_id)


def phones_panel_rows(shown: list[Heartbeat], alive: set[str], records: dict[str, PowerRecord],
                      now: float, day: Day) -> dict[str, Row]:
    """Workers by id, each with its phone's power; then the phones no listed worker drives that
    cost something today: the ones still on first (they bill), then those that were on today,
    in the campaign's order (`records`' order). A phone off all day is left out: a farm of a
    thousand phones would bury its workers under rows that say nothing."""
    out = dict(worker_row(hb, hb.worker_id in alive, now,
                          power_cells(records.get(hb.phone) if hb.phone else None, now, day))
               for hb in sorted(shown, key=lambda hb: sort_key(hb.worker_id)))
    driven = {hb.phone for hb in shown if hb.phone}
    idle = [r for r in records.values() if r.phone not in driven
            and (r.running or r.on_seconds_today(now, day) > 0)]
    for record in sorted(idle, key=lambda r: not r.running):    # stable: keeps campaign order
        key, cells = phone_row(record, now, day)
        out[key] = cells
    return out


# A shared store's workers on other hosts are listed while their lease runs, and this long after
# it expired (a host that died: its claims wait for recovery meanwhile).
EXPIRED_SHOWN_S = 120.0
WATCHER_ID = "watch"     # engine/workers.py: the supervisor's own lease


def lease_rows(leases: list[dict], here: str, rows: dict[str, Row]) -> dict[str, Row]:
    """On a store shared by several hosts, every row names its host (`a/0`): this host's workers
    keep their keys, and the other hosts' come from their leases in the database, with the
    job they hold and how long their lease has left (`exp` in the bad tone once it ran out)."""
    out: dict[str, Row] = {}
    for key, cells in rows.items():
        out[key] = cells if phone_of_key(key) is not None else (f"{here}/{cells[0]}", *cells[1:])
    for lease in leases:
        host, worker = str(lease["host"]), str(lease["worker_id"])
        left = float(lease["expires_in"])
        if host == here or left < -EXPIRED_SHOWN_S:
            continue
        name = "sup" if worker == WATCHER_ID else worker
        state = str(lease["state"] or "-")
        out[f"{host}/{worker}"] = (
            f"{host}/{name}", str(lease["pid"]), str(lease["phone"] or "-"), "", "", "", "",
            _state_cell(state) if left >= 0 else (WORKER_DEAD, "bad"),
            str(lease["job_id"] or ""), "", (f"{left:.0f}s", "dim") if left >= 0 else
            ("exp", "bad"))
    return out


class WorkersPanel(LiveTable):
    title = "Phones · workers"
    empty_text = "no workers and no phones: press s to start a run"
    BINDINGS = [Binding("enter", "select", "Detail", id="worker-job-detail")]

    def __init__(self, **kwargs) -> None:
        super().__init__(COLUMNS, **kwargs)
