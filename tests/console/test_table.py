"""LiveTable: edits by key, only what changed, the cursor follows its row."""
from __future__ import annotations

from textual.app import App

from console.widgets.jobs import JobRows, job_cells
from console.widgets.live_table import Column, LiveTable
from engine import columns as C

from console_fixtures import T0, async_test, frozen_rows

COLUMNS = (Column("name", "name", 8), Column("n", "n", 4, right=True),
           Column("note", "note", 6, flex=True), Column("extra", "extra", 10, drop=1))


class Host(App):
    def __init__(self):
        super().__init__()
        self.selected: list[str] = []

    def compose(self):
        yield LiveTable(COLUMNS, id="t")

    def on_live_table_selected(self, event: LiveTable.Selected) -> None:
        self.selected.append(event.key)


def rows(n: int, bump: set[int] = frozenset(), skip: int = 0) -> dict[str, tuple]:
    return {f"k{i}": (f"row {i}", str(i + (100 if i in bump else 0)), ("ok", "ok"), "x")
            for i in range(skip, n)}


class Spy:
    """Counts the table's edit primitives."""

    def __init__(self, table: LiveTable, monkeypatch):
        self.calls: dict[str, int] = {"add_row": 0, "remove_row": 0, "update_cell": 0}
        for name in self.calls:
            original = getattr(table, name)

            def wrapped(*args, _name=name, _original=original):
                self.calls[_name] += 1
                return _original(*args)

            monkeypatch.setattr(table, name, wrapped)


@async_test
async def test_sync_edits_only_what_changed(monkeypatch):
    app = Host()
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(LiveTable)
        assert table.sync(rows(1000)) == 1000
        spy = Spy(table, monkeypatch)
        assert table.sync(rows(1000)) == 0                       # nothing changed
        assert table.sync(rows(1000, bump={3, 500})) == 2        # two cells
        assert spy.calls == {"add_row": 0, "remove_row": 0, "update_cell": 2}
        assert table.get_cell("k500", "n") == "600"
        new = dict(list(rows(1000, bump={3, 500}).items())[:998])
        new["k1000"] = ("new", "1", "", "")
        assert table.sync(new) == 3                              # 2 removed, 1 added
        assert spy.calls == {"add_row": 1, "remove_row": 2, "update_cell": 2}
        assert table.visible_keys[-1] == "k1000" and table.row_count == 999


@async_test
async def test_cursor_follows_its_row_and_filter():
    app = Host()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(LiveTable)
        table.sync(rows(50))
        table.focus()
        await pilot.press("down", "down", "down")
        assert table.cursor_key == "k3"
        table.sync(rows(50, skip=2))             # two rows above it go
        assert table.cursor_key == "k3" and table.cursor == 1
        await pilot.press("end")
        assert table.cursor_key == "k49" and table.scroll_y > 0
        table.set_filter("row 4")
        assert table.visible_keys == ["k4"] + [f"k{i}" for i in range(40, 50)]
        assert table.cursor_key == "k49"
        table.update_cell("k40", "name", "renamed")             # no longer matches
        assert "k40" not in table.visible_keys
        table.set_filter("")
        assert len(table.visible_keys) == 48 and table.cursor_key == "k49"
        await pilot.press("enter")
        await pilot.pause()
        assert app.selected == ["k49"]


@async_test
async def test_columns_drop_on_a_narrow_screen():
    app = Host()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(LiveTable)
        table.sync(rows(3))
        await pilot.pause()
        assert "extra" in "".join(s.text for s in table.render_line(0))
    app = Host()
    async with app.run_test(size=(25, 12)) as pilot:
        table = app.query_one(LiveTable)
        table.sync(rows(3))
        await pilot.pause()
        header = "".join(s.text for s in table.render_line(0))
        assert "extra" not in header and "note" in header


def test_job_rows_reuse_cells_of_unchanged_rows(tmp_path):
    from datetime import timezone
    data = frozen_rows(tmp_path / "spring")
    builder = JobRows()
    first, posted = builder.build(data, T0, timezone.utc)
    assert len(posted) == 5
    again, _ = builder.build([list(r) for r in data], T0 + 10, timezone.utc)
    by_key = first
    for key, cells in again.items():
        claimed = cells[3][0] == C.CLAIMED
        assert (cells is by_key[key]) != claimed   # reused unless running (duration moves)
    running = again["clip_007.mp4_spring"]
    assert running[8] == "1m25s"
    assert job_cells(data[5], T0, timezone.utc)[9] == ("account suspended", "bad")
