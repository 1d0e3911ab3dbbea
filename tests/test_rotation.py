"""Accounts out of rotation and back (engine/rotation.py): kept in the campaign's state folder,
never in accounts.txt; the claim never takes a job of an account that is out, and its jobs wait
as they are; the account's state is OFF, with who took it out, when and why. Through the API,
the store, and the CLI as a real process, a real run on the simulated backend included."""
from __future__ import annotations

import json
import os

import pytest

from engine import columns as C
from engine import rotation
from engine.accounts import OFF, RUNNING, AccountStates, account_states
from engine.campaigns import Account
from engine.context import PostingContext
from engine.problems import InputError
from engine.tracker import ProgressStore

from conftest import fast_sim, postdeck, write_campaign
from helpers import T0, Clock, one_message, row, settings, snapshot, tree_snapshot, write_progress

ACCOUNTS = ["acc_a", "acc_b", "acc_c"]


@pytest.fixture
def ctx(campaigns_dir) -> PostingContext:
    root = write_campaign(campaigns_dir / "c", ACCOUNTS, 3, {"timezone": "UTC"})
    return PostingContext.for_campaign_dir(root, campaigns_dir)


def store_of(ctx: PostingContext, clock=None) -> ProgressStore:
    return ProgressStore.for_context(ctx, clock=clock or Clock())


# --- the rotation file ------------------------------------------------------------------------------
def test_disable_keeps_who_when_why_in_the_state_folder_only(ctx):
    accounts_before = snapshot(ctx.accounts_file)
    entry = rotation.disable(ctx, "acc_b", by="maria", why="checking  the login")
    assert entry["by"] == "maria" and entry["why"] == "checking the login"
    assert entry["at"].endswith("+00:00")
    assert rotation.disabled(ctx) == {"acc_b": entry}
    on_disk = json.loads((ctx.state_dir / "rotation.json").read_text())
    assert on_disk == {"disabled": {"acc_b": entry}}
    assert snapshot(ctx.accounts_file) == accounts_before
    assert rotation.enable(ctx, "acc_b") is True
    assert rotation.disabled(ctx) == {}
    assert rotation.enable(ctx, "acc_b") is False         # not out: nothing to do
    assert snapshot(ctx.accounts_file) == accounts_before


def test_taken_out_again_it_keeps_since_when(ctx):
    first = rotation.disable(ctx, "acc_a", "maria", "one")
    again = rotation.disable(ctx, "acc_a", "omar", "")
    assert again == {"by": "omar", "at": first["at"], "why": "no reason given"}


def test_an_account_not_in_accounts_txt_is_refused_naming_the_file(ctx):
    with pytest.raises(InputError) as info:
        rotation.disable(ctx, "acc_x", "maria", "why")
    assert str(ctx.accounts_file) in str(info.value) and "'acc_x'" in str(info.value)
    with pytest.raises(InputError):
        rotation.enable(ctx, "acc_x")
    assert not (ctx.state_dir / "rotation.json").exists()


def test_an_account_out_of_rotation_can_be_put_back_after_it_left_accounts_txt(ctx):
    rotation.disable(ctx, "acc_c", "maria", "gone")
    ctx.accounts_file.write_text("acc_a\nacc_b\n")
    assert rotation.enable(ctx, "acc_c") is True


@pytest.mark.parametrize("text", ["{not json", '{"disabled": []}', '{"disabled": {"a": 1}}',
                                  "[]"])
def test_a_damaged_rotation_file_is_refused_and_left_as_it_is(ctx, text):
    path = ctx.state_dir / "rotation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    before = snapshot(path)
    for call in (lambda: rotation.disabled(ctx),
                 lambda: rotation.disable(ctx, "acc_a", "maria", "x"),
                 lambda: store_of(ctx).claim("w1")):
        with pytest.raises(InputError) as info:
            call()
        assert str(path) in str(info.value)
    assert snapshot(path) == before


# --- the claim ----------------------------------------------------------------------------------------
def rows3() -> list[list[str]]:
    return [row("a1", "acc_a"), row("b1", "acc_b"), row("c1", "acc_c")]


def test_the_claim_never_takes_a_job_of_an_account_out_of_rotation(ctx):
    write_progress(ctx.progress_file, rows3())
    store = store_of(ctx)
    assert store.claim("w0", accounts=frozenset({"acc_c"}))["job_id"] == "c1"  # read once
    rotation.disable(ctx, "acc_a", "maria", "checking")   # seen by a store already reading
    claimed = []
    while (job := store.claim("w1")) is not None:
        claimed.append(job["job_id"])
    assert claimed == ["b1"]
    assert store.job("a1")["status"] == C.PENDING         # it waits as it was
    assert store.next_chance() == (True, None)             # nothing more for it today
    rotation.enable(ctx, "acc_a")
    assert store.claim("w2")["job_id"] == "a1"


def test_a_run_with_only_accounts_out_of_rotation_has_nothing_to_wait_for(ctx):
    write_progress(ctx.progress_file, [row("a1", "acc_a"), row("b1", "acc_b", C.RETRYING,
                                                                retry_at="2025-06-15T12:30:00")])
    store = store_of(ctx)
    assert store.next_chance()[1] is not None
    for name in ("acc_a", "acc_b"):
        rotation.disable(ctx, name, "maria", "x")
    assert store.next_chance() == (False, None)
    assert store.claim("w1") is None


def test_the_rotation_file_is_read_again_only_when_it_changes(ctx, monkeypatch):
    write_progress(ctx.progress_file, rows3())
    rotation.disable(ctx, "acc_a", "maria", "x")
    store = store_of(ctx)
    reads = []
    real = rotation.read_document
    monkeypatch.setattr(rotation, "read_document", lambda p: reads.append(p) or real(p))
    for _ in range(3):
        store.next_chance()
    assert len(reads) == 1
    rotation.disable(ctx, "acc_b", "maria", "y")          # goes through read_rotation too
    reads.clear()
    store.next_chance()
    assert len(reads) == 1


def test_a_file_damaged_while_a_run_goes_keeps_the_accounts_out(ctx):
    write_progress(ctx.progress_file, [row("a1", "acc_a")])
    rotation.disable(ctx, "acc_a", "maria", "x")
    store = store_of(ctx)
    assert store.claim("w1") is None
    path = ctx.state_dir / "rotation.json"
    path.write_text("{half a write")
    os.utime(path, ns=(1, 1))
    assert store.claim("w1") is None                       # never back to work by a bad edit


# --- the account's state ------------------------------------------------------------------------------
def test_the_state_is_off_with_who_when_why_and_running_comes_first():
    s = settings(timezone="UTC")
    rows = [row("a1", "acc_a"), row("b1", "acc_b", C.CLAIMED, claimed_at="2025-06-15T11:59:00")]
    off = {"acc_a": {"by": "maria", "at": "2025-06-15T10:00:00.000+00:00", "why": "login"},
           "acc_b": {"by": "omar", "at": "2025-06-15T10:00:00.000+00:00", "why": "phone"}}
    accounts = [Account("acc_a", "acc_a"), Account("acc_b", "acc_b"), Account("acc_c", "acc_c")]
    states = {a.account: a for a in account_states(rows, s, T0, accounts, disabled=off)}
    a = states["acc_a"]
    assert (a.state, a.off_by, a.off_at, a.off_why) == (OFF, "maria", off["acc_a"]["at"], "login")
    assert a.waiting == 1                                  # its job waits
    assert states["acc_b"].state == RUNNING and states["acc_b"].off_by == "omar"
    assert a.as_dict()["off_why"] == "login"
    c = states["acc_c"]
    assert c.state == "AVAILABLE" and (c.off_by, c.off_at, c.off_why) == (None,) * 3
    assert not {"off_by", "off_at", "off_why"} & set(c.as_dict())   # as it always was


def test_the_consoles_incremental_states_see_a_rotation_change_at_once():
    s = settings(timezone="UTC")
    rows = [row("a1", "acc_a")]
    accounts = [Account("acc_a", "acc_a")]
    states = AccountStates(full_every=3600)
    assert states.compute(rows, s, T0, accounts, set())[0].state == "AVAILABLE"
    off = {"acc_a": {"by": "maria", "at": "x", "why": "y"}}
    assert states.compute(rows, s, T0 + 1, accounts, set(), disabled=off)[0].state == OFF
    assert states.compute(rows, s, T0 + 2, accounts, set())[0].state == "AVAILABLE"


# --- the CLI, and a real run ----------------------------------------------------------------------------
def cli(campaigns_dir, *args):
    return postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c", *args)


def test_cli_disable_and_enable(ctx, campaigns_dir):
    res = cli(campaigns_dir, "--disable-account", "acc_a", "--reason", "checking the login")
    assert res.returncode == 0, res.stderr
    assert "account acc_a is out of rotation" in res.stdout and "checking the login" in res.stdout
    entry = rotation.disabled(ctx)["acc_a"]
    assert entry["why"] == "checking the login" and entry["by"]
    res = cli(campaigns_dir, "--enable-account", "acc_a")
    assert res.returncode == 0 and "back in rotation" in res.stdout
    res = cli(campaigns_dir, "--enable-account", "acc_a")
    assert res.returncode == 0 and "was not out of rotation" in res.stdout
    assert rotation.disabled(ctx) == {}


def test_cli_disabling_an_unknown_account_is_refused_changing_nothing(ctx, campaigns_dir):
    rotation.disable(ctx, "acc_b", "maria", "x")
    before = tree_snapshot(ctx.root)
    one_message(cli(campaigns_dir, "--disable-account", "acc_zz"), str(ctx.accounts_file),
                "'acc_zz'")
    one_message(cli(campaigns_dir, "--enable-account", "acc_zz"), str(ctx.accounts_file))
    assert tree_snapshot(ctx.root) == before


@pytest.mark.parametrize("args", [["--disable-account", " "], ["--enable-account"],
                                  ["--enable-account", "acc_a", "--reason", "x"],
                                  ["--disable-account", "acc_a", "--enable-account", "acc_b"]])
def test_cli_usage_errors_exit_2(ctx, campaigns_dir, args):
    res = cli(campaigns_dir, *args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert not (ctx.state_dir / "rotation.json").exists()


def test_a_real_run_leaves_an_account_out_then_posts_it_once_back(campaigns_dir):
    root = write_campaign(campaigns_dir / "c", ["acc_a", "acc_b"], 4,
                          {"timezone": "UTC", "simulation": fast_sim()})
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    assert cli(campaigns_dir, "--disable-account", "acc_a").returncode == 0
    res = cli(campaigns_dir, "--run", "--workers", "2")
    assert res.returncode == 0, res.stderr
    jobs = {j["account"]: j for j in ProgressStore.for_context(ctx).jobs()}
    assert (jobs["acc_a"]["status"], jobs["acc_a"]["attempts"]) == (C.PENDING, "0")
    assert jobs["acc_a"]["worker_id"] == "" and jobs["acc_b"]["status"] == C.SUCCESS
    assert cli(campaigns_dir, "--enable-account", "acc_a").returncode == 0
    res = cli(campaigns_dir, "--run", "--workers", "2")
    assert res.returncode == 0, res.stderr
    after = ProgressStore.for_context(ctx).jobs()
    assert [(j["job_id"], j["status"]) for j in after] == [
        (jobs["acc_a"]["job_id"], C.SUCCESS), (jobs["acc_b"]["job_id"], C.SUCCESS)]


def test_a_run_on_a_damaged_rotation_file_is_refused_before_any_worker(ctx, campaigns_dir):
    path = ctx.state_dir / "rotation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"disabled": {"acc_a": "x"}}')
    before = snapshot(path)
    one_message(cli(campaigns_dir, "--run"), str(path))
    assert snapshot(path) == before and not ctx.progress_file.exists()



def test_the_status_text_says_who_took_an_account_out(ctx, capsys):
    """What --status prints, and --status --json holds, for an OFF account."""
    from console import headless
    from engine.status import campaign_status
    rotation.disable(ctx, "acc_a", "maria", "checking the login")
    assert headless._status(ctx, False) == 0
    lines = capsys.readouterr().out.splitlines()
    a = next(x for x in lines if x.strip().startswith("acc_a"))
    assert " OFF " in a and "by maria: checking the login" in a
    assert "rotation" not in next(x for x in lines if x.strip().startswith("acc_b"))
    states = {a["account"]: a for a in campaign_status(ctx)["accounts"]}
    assert states["acc_a"]["state"] == "OFF" and states["acc_a"]["off_by"] == "maria"
    assert states["acc_a"]["off_why"] == "checking the login"
    assert states["acc_b"]["state"] != "OFF" and "off_by" not in states["acc_b"]


# --- phones out of rotation ---------------------------------------------------------------------
def test_a_phone_out_of_rotation_is_never_claimed_and_comes_back(campaigns_dir):
    root = write_campaign(campaigns_dir / "p", [("ann", "ph-1"), ("bob", "ph-1"), ("cat", "ph-2")],
                          3, {"simulation": fast_sim()})
    base = ("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "p")
    refused = postdeck(*base, "--disable-phone", "ph-9")
    assert refused.returncode == 1 and "accounts.txt" in refused.stderr and "ph-9" in refused.stderr
    out = postdeck(*base, "--disable-phone", "ph-1", "--reason", "screen cracked")
    assert out.returncode == 0 and "out of rotation" in out.stdout, out.stderr
    assert postdeck(*base, "--run", "--workers", "2").returncode == 0
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    rows = {r[C.ACCOUNT]: r[C.STATUS] for r in ProgressStore.for_context(ctx).read().rows}
    assert rows == {"ann": C.PENDING, "bob": C.PENDING, "cat": C.SUCCESS}
    st = json.loads(postdeck(*base, "--status", "--json").stdout)
    states = {a["account"]: a for a in st["accounts"]}
    assert states["ann"]["state"] == OFF and "phone ph-1 out: screen cracked" in states["ann"][
        "off_why"]
    assert states["cat"]["state"] != OFF
    # the accounts' own entries are theirs: a phone coming back does not touch them
    rotation.disable(ctx, "bob", "maria", "own reason")
    back = postdeck(*base, "--enable-phone", "ph-1")
    assert back.returncode == 0 and "back in rotation" in back.stdout
    assert rotation.disabled(ctx) == {"bob": rotation.disabled(ctx)["bob"]}
    assert rotation.phones_out(ctx) == {}
    assert postdeck(*base, "--run").returncode == 0
    rows = {r[C.ACCOUNT]: r[C.STATUS] for r in ProgressStore.for_context(ctx).read().rows}
    assert rows == {"ann": C.SUCCESS, "bob": C.PENDING, "cat": C.SUCCESS}
    again = postdeck(*base, "--enable-phone", "ph-1")
    assert again.returncode == 0 and "was not out" in again.stdout
