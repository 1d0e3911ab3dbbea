"""The store's fast paths give the same answers as a full parse and a full serialize: re-reading
a file another process changed (tracker.reparse) and writing only the rows a change touched
(tracker.serialize_table). Differential, property-based: random files, random edits."""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from engine import columns as C
from engine.tracker import (CorruptProgressFile, Table, parse_progress, reparse, serialize,
                            serialize_table)

from helpers import make_store, row

PATH = __import__("pathlib").Path("progress.csv")

texts = st.sampled_from(["", "plain", "a, comma", 'say "hi"', "two\nlines", "three\n\nlines",
                         "emoji 🎬", "tab\there", ",", '"', "\n", "end,\n"])


@st.composite
def tables(draw):
    n = draw(st.integers(0, 12))
    rows = []
    for i in range(n):
        r = row(f"j{i}", f"acc{draw(st.integers(0, 4))}",
                draw(st.sampled_from(C.STATUSES)), caption=draw(texts), error=draw(texts))
        rows.append(r)
    return rows


EDITS = ["set", "append", "append_multiline", "dup", "bad_status", "open_quote", "truncate",
         "drop_row", "swap", "header", "crlf", "blank_line", "extra_field"]


def edit(data: bytes, rows: list[list[str]], kind: str, rnd: random.Random) -> bytes:
    """An edit of the file as another writer (or a broken disk) might make it."""
    rows = [r[:] for r in rows]
    if kind == "set" and rows:
        for _ in range(rnd.randint(1, 3)):
            r = rnd.choice(rows)
            r[rnd.choice([C.STATUS, C.CAPTION, C.ERROR, C.CLAIM_ID])] = rnd.choice(
                ["claimed", "success", "x\ny", 'q"q', "zz", ""])
            if r[C.STATUS] not in C.STATUSES or r[C.STATUS] == "":
                r[C.STATUS] = "claimed"
        return serialize(rows)
    if kind in ("append", "append_multiline"):
        cap = "new\nrow, \"quoted\"" if kind == "append_multiline" else "new"
        rows.insert(rnd.randint(0, len(rows)), row(f"n{rnd.randint(0, 99)}", "acc9", caption=cap))
        return serialize(rows)
    if kind == "dup" and rows:
        rows.insert(rnd.randint(0, len(rows)), rnd.choice(rows)[:])
        return serialize(rows)
    if kind == "bad_status" and rows:
        rnd.choice(rows)[C.STATUS] = "done"
        return serialize(rows)
    if kind == "drop_row" and rows:
        rows.pop(rnd.randrange(len(rows)))
        return serialize(rows)
    if kind == "swap" and len(rows) > 1:
        a, b = rnd.sample(range(len(rows)), 2)
        rows[a], rows[b] = rows[b], rows[a]
        return serialize(rows)
    cut = rnd.randint(0, len(data))
    if kind == "open_quote":
        return data[:cut] + b'"' + data[cut:]
    if kind == "truncate":
        return data[:cut]
    if kind == "header":
        return data.replace(b"job_id", b"jobid", 1)
    if kind == "crlf":
        return data.replace(b"\n", b"\r\n")
    if kind == "blank_line":
        return data[:cut] + b"\n" + data[cut:]
    if kind == "extra_field":
        return data.replace(b"\n", b",x\n", 2)
    return data


def full(data: bytes):
    try:
        return parse_progress(PATH, data).rows
    except CorruptProgressFile as exc:
        return ("corrupt", exc.line)


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.lists(st.sampled_from(EDITS), min_size=1, max_size=3),
       st.integers(0, 2**32))
def test_reparse_agrees_with_a_full_parse(rows, edits, seed):
    rnd = random.Random(seed)
    data = serialize(rows)
    old = parse_progress(PATH, data)
    for kind in edits:
        new = edit(data, rows, kind, rnd)
        expected = full(new)
        got = reparse(old, new)
        if got is not None:
            assert got.rows == expected, kind
            assert got.index == {r[C.JOB_ID]: i for i, r in enumerate(got.rows)}
            assert serialize_table(got) == new       # every raw text is the row's text
        if isinstance(expected, list):
            old, data, rows = parse_progress(PATH, new), new, expected


@hsettings(max_examples=200, deadline=None)
@given(tables(), st.lists(st.tuples(st.integers(0, 20), st.sampled_from(C.COLUMNS),
                                    texts), max_size=6), st.booleans())
def test_serialize_table_equals_a_full_serialize(rows, changes, append):
    table = parse_progress(PATH, serialize(rows))
    for i, column, value in changes:
        if table.rows:
            r = table.rows[i % len(table.rows)]
            if column != "job_id":
                r[C.COLUMNS.index(column)] = value if column != "status" else "failed"
    if append:
        table.append(row("appended", "acc", caption="a\nb"))
    assert serialize_table(table) == serialize(table.rows)
    assert parse_progress(PATH, serialize_table(table)).rows == table.rows
    assert serialize_table(Table([r[:] for r in table.rows])) == serialize(table.rows)


def test_a_crlf_file_is_rewritten_whole(tmp_path):
    rows = [row("j1", "a", caption="x\ny"), row("j2", "b")]
    data = serialize(rows).replace(b"\n", b"\r\n")
    table = parse_progress(PATH, data)
    assert table.raw == [None, None]
    assert serialize_table(table) == serialize(table.rows)


def test_two_stores_stay_in_step(tmp_path):
    """Two store objects (two processes) take turns on one file; each re-reads the other's
    writes through reparse and must see exactly what a fresh store sees."""
    rows = [row(f"j{i}", f"acc{i % 7}", caption=f"c{i}\nline" if i % 3 else f"c{i}")
            for i in range(40)]
    a = make_store(tmp_path, rows, max_posts_per_account_per_day=4)
    b = make_store(tmp_path, max_posts_per_account_per_day=4)
    rnd = random.Random(7)
    held = []
    for step in range(120):
        store = rnd.choice([a, b])
        if held and rnd.random() < 0.5:
            job_id, cid = held.pop(rnd.randrange(len(held)))
            if rnd.random() < 0.7:
                store.complete(job_id, cid)
            else:
                store.fail(job_id, cid, "adb timed out")
        else:
            job = store.claim(f"w{step % 3}")
            if job:
                held.append((job["job_id"], job["claim_id"]))
        fresh = make_store(tmp_path)
        assert a.jobs() == b.jobs() == fresh.jobs()
        assert store.path.read_bytes() == serialize(fresh.read().rows)


def test_a_middle_row_without_its_line_end_is_not_glued_to_the_next():
    a, x, c = row("a", "acc"), row("x", "acc"), row("c", "acc")
    old = parse_progress(PATH, serialize([a, c]))
    text = serialize([a, x, c]).decode()
    x_line = serialize([x]).decode().split("\n", 1)[1]
    new = text.replace(x_line, x_line.rstrip("\n")).encode()   # x runs into c's line
    assert full(new) == ("corrupt", 3)
    assert reparse(old, new) is None


def test_reparse_reuses_unchanged_rows_between_changes_spread_through_the_file():
    """A poll after workers changed a few rows here and there parses only those rows: every
    other row comes back as the very same object (the console's row caches rely on it)."""
    rows = [row(f"j{i}", f"acc{i % 7}", caption=f"line one\nline \"two\" of {i}")
            for i in range(200)]
    old = parse_progress(PATH, serialize(rows))
    changed = {3, 77, 150}
    for i in changed:
        rows[i][C.STATUS] = C.CLAIMED
        rows[i][C.CAPTION] += "\nand a third"
    new = serialize(rows)
    got = reparse(old, new)
    assert got is not None and got.rows == parse_progress(PATH, new).rows
    same = [i for i in range(200) if got.rows[i] is old.rows[i]]
    assert same == [i for i in range(200) if i not in changed]
    assert serialize_table(got) == new
