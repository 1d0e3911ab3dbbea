"""LiveTable: the keyed table every panel is made of.

It is drawn with the line API (a ScrollView whose `render_line` draws only the rows on screen),
has fixed column widths (one column may take the width left over), and is changed only by key:
`add_row`, `remove_row`, `update_cell`. `sync(rows)` compares fresh rows (key -> cells) with what is
shown and applies just those edits, so a poll that changed 100 of 10,000 jobs touches 100 rows and
never clears and refills. The cursor follows its row's key when rows come and go above it.

A cell is plain text or `(text, tone)`; tones are styled by the component classes
`live-table--<tone>` so the theme (and the 256-colour fallback) decides the colours.

`o` sorts by a column (none, each column in turn, none again), `O` turns the direction; the
sorted column's header shows ▲ or ▼. The sort is stable (ties keep the rows' own order), numbers
and durations sort as numbers, and the rows are sorted again only when the rows or the sort
column's cells changed: a poll that touched other cells still only redraws them.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Sequence, Union

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .fmt import sort_value

Cell = Union[str, tuple[str, str]]
Row = tuple[Cell, ...]
TONES = ("ok", "bad", "warn", "busy", "dim", "info")


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    right: bool = False
    flex: bool = False      # takes the width left over (at least `width`)
    drop: int = 0           # on a narrow screen, hidden (highest first); 0: always shown


def cell_text(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


class LiveTable(ScrollView, can_focus=True):
    """A table of keyed rows, drawn line by line."""

    COMPONENT_CLASSES = {"live-table--header", "live-table--cursor", "live-table--cursor-blur",
                         "live-table--empty", *(f"live-table--{t}" for t in TONES)}

    DEFAULT_CSS = """
    LiveTable {
        background: $surface;
        color: $foreground;
        overflow: auto auto;
        scrollbar-size: 1 1;
        scrollbar-gutter: stable;   /* the vertical scrollbar's column is always kept: the
                                       columns do not move when rows start to overflow */
        & > .live-table--header { text-style: bold; color: $text-primary; background: $panel; }
        & > .live-table--cursor { background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold; }
        & > .live-table--cursor-blur { background: $block-cursor-blurred-background; }
        & > .live-table--empty { color: $text-muted; text-style: italic; }
        & > .live-table--ok { color: $text-success; }
        & > .live-table--bad { color: $text-error; }
        & > .live-table--warn { color: $text-warning; }
        & > .live-table--busy { color: $text-accent; text-style: bold; }
        & > .live-table--dim { color: $text-muted; }
        & > .live-table--info { color: $text-primary; }
    }
    """

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
        Binding("enter", "select", "Select", show=False),
        Binding("o", "sort", "Sort", id="sort"),
        Binding("O", "sort_reverse", "Reverse sort", id="sort-reverse", show=False),
    ]
    sortable = True             # `o` / `O` sort it
    filter_keys = True          # the filter looks at the row keys too, not just the cells

    class Selected(Message):
        """Enter (or a double click) on a row."""

        def __init__(self, table: "LiveTable", key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> "LiveTable":
            return self.table

    title = "table"
    empty_text = "nothing here"

    def __init__(self, columns: Sequence[Column], *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.columns = tuple(columns)
        self._rows: dict[str, Row] = {}
        self._visible: list[str] = []
        self._pos: dict[str, int] = {}
        self._filter = ""
        self._haystack: dict[str, str] = {}
        self._strips: dict[tuple[str, int], Strip] = {}
        self._widths = [c.width for c in self.columns]     # 0: dropped on this width
        self._styles: dict[str, Style] = {}
        self._batching = 0
        self._dirty = False          # structure or filter changed: rebuild the visible order
        self._touched = False        # something shown changed: refresh
        self._sort: int | None = None   # the sorted column's index
        self._descending = False
        self._sort_keys: dict[str, tuple] = {}
        self.cursor = 0
        self.border_title = self.title

    # --- reading -----------------------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def visible_keys(self) -> list[str]:
        return self._visible

    @property
    def cursor_key(self) -> str | None:
        if 0 <= self.cursor < len(self._visible):
            return self._visible[self.cursor]
        return None

    def get_cell(self, key: str, column: str) -> str:
        return cell_text(self._rows[key][self._column_index(column)])

    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def sort_column(self) -> str | None:
        return None if self._sort is None else self.columns[self._sort].key

    @property
    def sort_descending(self) -> bool:
        return self._descending

    # --- changing ----------------------------------------------------------------------------------
    @contextmanager
    def batch_edits(self) -> Iterator[None]:
        """Edits inside apply together: the visible order is rebuilt once, at the end."""
        self._batching += 1
        try:
            yield
        finally:
            self._batching -= 1
            if not self._batching:
                self._settle()

    def add_row(self, key: str, cells: Row) -> None:
        if key in self._rows:
            raise KeyError(f"row {key!r} already exists")
        self._rows[key] = tuple(cells)
        self._dirty = True
        self._settle()

    def remove_row(self, key: str) -> None:
        del self._rows[key]
        self._forget(key)
        self._dirty = True
        self._settle()

    def update_cell(self, key: str, column: str | int, value: Cell) -> None:
        index = column if isinstance(column, int) else self._column_index(column)
        cells = self._rows[key]
        if cells[index] == value:
            return
        self._rows[key] = cells[:index] + (value,) + cells[index + 1:]
        self._forget(key)
        if self._filter or index == self._sort:
            self._dirty = True      # the row may now match the filter, or no longer; or move
        elif key in self._pos:
            self._touched = True
        self._settle()

    def sync(self, rows: Mapping[str, Row]) -> int:
        """Make the table show `rows` (key -> cells, in that order) by editing only what differs.
        Returns the number of edits (rows added or removed, cells updated)."""
        edits = 0
        current = self._rows
        with self.batch_edits():
            if len(rows) != len(current) or rows.keys() != current.keys():
                for key in [k for k in current if k not in rows]:
                    self.remove_row(key)
                    edits += 1
            for key, cells in rows.items():
                old = current.get(key)
                if old is None:
                    self.add_row(key, cells)
                    edits += 1
                elif old is not cells and old != cells:
                    for i, (a, b) in enumerate(zip(old, cells)):
                        if a != b:
                            self.update_cell(key, i, b)
                            edits += 1
            if list(rows) != list(self._rows):      # same rows, another order
                self._rows = {k: self._rows[k] for k in rows}
                self._dirty = True
        return edits

    def set_filter(self, text: str) -> None:
        text = text.strip().lower()
        if text != self._filter:
            self._filter = text
            self._dirty = True
            self._settle()

    def set_sort(self, column: str | int | None, descending: bool = False) -> None:
        """Sort by a column (None: the rows' own order)."""
        index = column if column is None or isinstance(column, int) \
            else self._column_index(column)
        if (index, descending) != (self._sort, self._descending):
            self._sort, self._descending = index, descending
            self._sort_keys.clear()
            self._strips.pop(("", 0), None)     # the header's arrow
            self._dirty = True
            self._settle()

    def move_cursor(self, index: int, scroll: bool = True) -> None:
        count = len(self._visible)
        index = max(0, min(index, count - 1)) if count else 0
        if index != self.cursor:
            for i in (self.cursor, index):
                if 0 <= i < count:
                    self._forget_strips(self._visible[i])
            self.cursor = index
            self.refresh()
        if scroll:
            self.scroll_to_cursor()

    def move_to_key(self, key: str) -> bool:
        if key in self._pos:
            self.move_cursor(self._pos[key])
            return True
        return False

    def scroll_to_cursor(self) -> None:
        shown = max(1, self.scrollable_content_region.height - 1)
        top = round(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + shown:
            self.scroll_to(y=self.cursor - shown + 1, animate=False, immediate=True)

    # --- internals ---------------------------------------------------------------------------------
    def _column_index(self, key: str) -> int:
        for i, c in enumerate(self.columns):
            if c.key == key:
                return i
        raise KeyError(f"no column {key!r}")

    def _forget(self, key: str) -> None:
        self._haystack.pop(key, None)
        self._sort_keys.pop(key, None)
        self._forget_strips(key)

    def _forget_strips(self, key: str) -> None:
        for mode in (0, 1, 2):
            self._strips.pop((key, mode), None)

    def _matches(self, key: str) -> bool:
        hay = self._haystack.get(key)
        if hay is None:
            hay = self._haystack[key] = " ".join(
                [key if self.filter_keys else "", *(cell_text(c) for c in self._rows[key])]
            ).lower()
        return self._filter in hay

    def _settle(self) -> None:
        if self._batching:
            return
        if self._dirty:
            self._dirty = False
            keep = self.cursor_key
            if self._filter:
                self._visible = [k for k in self._rows if self._matches(k)]
            else:
                self._visible = list(self._rows)
            if self._sort is not None:
                self._visible.sort(key=self._sort_key, reverse=self._descending)
            self._pos = {k: i for i, k in enumerate(self._visible)}
            self._update_virtual_size()
            if keep is not None and keep in self._pos:
                self.cursor = self._pos[keep]
            else:
                self.cursor = max(0, min(self.cursor, len(self._visible) - 1))
            self._touched = True
            self._update_subtitle()
        if self._touched:
            self._touched = False
            self.refresh()

    def _sort_key(self, key: str) -> tuple:
        value = self._sort_keys.get(key)
        if value is None:
            value = self._sort_keys[key] = sort_value(cell_text(self._rows[key][self._sort]))
        return value

    def _update_subtitle(self) -> None:
        total, shown = len(self._rows), len(self._visible)
        text = f"{shown}/{total}" if self._filter else f"{total}"
        if self._filter:
            text += f" · filter: {self._filter}"
        self.border_subtitle = text

    def _total_width(self) -> int:
        return sum(self._widths) + sum(1 for w in self._widths if w) + 1

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self._total_width(), len(self._visible) + 1)

    def _layout_columns(self) -> None:
        """Fixed widths; on a narrow screen the droppable columns go first, and the flex column
        takes what is left."""
        width = self.scrollable_content_region.width
        shown = list(self.columns)
        needed = lambda cols: sum(c.width + 1 for c in cols) + 1  # noqa: E731
        for column in sorted((c for c in self.columns if c.drop), key=lambda c: -c.drop):
            if needed(shown) <= width:
                break
            shown.remove(column)
        spare = max(0, width - needed(shown))
        self._widths = [0 if c not in shown else c.width + (spare if c.flex else 0)
                        for c in self.columns]
        self._strips.clear()
        self._update_virtual_size()

    def on_resize(self, event: events.Resize) -> None:
        self._layout_columns()
        self.scroll_to_cursor()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._strips.clear()

    def on_focus(self) -> None:
        self._redraw_cursor()

    def on_blur(self) -> None:
        self._redraw_cursor()

    def _redraw_cursor(self) -> None:
        key = self.cursor_key
        if key is not None:
            self._forget_strips(key)
        self.refresh()

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self.get_component_rich_style(f"live-table--{name}",
                                                                       partial=True)
        return style

    # --- drawing -----------------------------------------------------------------------------------
    def _line(self, texts: Iterable[tuple[str, Style | None]], style: Style) -> Strip:
        segments = [Segment(" ", style)]
        for (text, tone), width, column in zip(texts, self._widths, self.columns):
            if not width:
                continue
            if cell_len(text) > width:
                text = set_cell_size(text, width - 1) + "…"
            elif column.right:
                text = " " * (width - cell_len(text)) + text
            else:
                text = text + " " * (width - cell_len(text))
            segments.append(Segment(text, style + tone if tone is not None else style))
            segments.append(Segment(" ", style))
        return Strip(segments, self._total_width())

    def _header_strip(self) -> Strip:
        strip = self._strips.get(("", 0))
        if strip is None:
            style = self.rich_style + self._style("header")
            strip = self._strips[("", 0)] = self._line(
                ((self._label(i), None) for i in range(len(self.columns))), style)
        return strip

    def _label(self, index: int) -> str:
        """A column's header; the sorted one's ends in its arrow, which is never cut off."""
        label = self.columns[index].label
        if index != self._sort:
            return label
        arrow, width = "▼" if self._descending else "▲", self._widths[index]
        if width and cell_len(label) + 1 > width:
            label = set_cell_size(label, max(0, width - 1))
        return label + arrow

    def _row_strip(self, key: str, mode: int) -> Strip:
        strip = self._strips.get((key, mode))
        if strip is None:
            if len(self._strips) > 4096:    # only rows on screen need a cached strip
                self._strips.clear()
            base = self.rich_style
            if mode == 1:
                base = base + self._style("cursor")
            elif mode == 2:
                base = base + self._style("cursor-blur")
            texts = []
            for cell in self._rows[key]:
                if isinstance(cell, str):
                    texts.append((cell, None))
                else:
                    tone = self._style(cell[1])
                    if mode == 1:       # the cursor's colours win over the tone's
                        tone = Style(bold=tone.bold)
                    texts.append((cell[0], tone))
            strip = self._strips[(key, mode)] = self._line(texts, base)
        return strip

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            strip = self._header_strip()
        else:
            index = scroll_y + y - 1
            if not self._visible and y == 1:
                text = self.empty_text if not self._filter else f"no row matches '{self._filter}'"
                return Strip([Segment(" " + text, base + self._style("empty"))]).crop_extend(
                    0, width, base)
            if not 0 <= index < len(self._visible):
                return Strip.blank(width, base)
            mode = 0
            if index == self.cursor:
                mode = 1 if self.has_focus else 2
            strip = self._row_strip(self._visible[index], mode)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    # --- keys and mouse ----------------------------------------------------------------------------
    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 2)

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor - self._page())

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor + self._page())

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._visible) - 1)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("sort", "sort_reverse") and not self.sortable:
            return False
        return True

    def action_sort(self) -> None:
        """The next column (none, each column, none again), ascending."""
        following = 0 if self._sort is None else self._sort + 1
        self.set_sort(None if following >= len(self.columns) else following, False)
        self.scroll_to_cursor()

    def action_sort_reverse(self) -> None:
        if self._sort is None:      # nothing sorted yet: the first column, descending
            self.set_sort(0, True)
        else:
            self.set_sort(self._sort, not self._descending)
        self.scroll_to_cursor()

    def action_select(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.Selected(self, key))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        index = round(self.scroll_y) + offset.y - 1
        if 0 <= index < len(self._visible):
            self.move_cursor(index, scroll=False)
            if event.chain >= 2:
                self.action_select()
