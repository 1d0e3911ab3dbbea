"""`postdeck` without --no-ui: which folder and campaign the console opens on."""
from __future__ import annotations

import pytest

from console import __main__ as cli
from console.app import PostdeckApp

from console_fixtures import async_test, next_frame, until_notified, write_campaign


@pytest.fixture
def opened(monkeypatch):
    """Run the CLI with the app's run() replaced: records the app it would have shown."""
    apps: list[PostdeckApp] = []

    def fake_run(self, *args, **kwargs):
        apps.append(self)
        return 0

    monkeypatch.setattr(PostdeckApp, "run", fake_run)
    return apps


def test_opens_on_the_campaigns_folder(tmp_path, opened, monkeypatch):
    d = tmp_path / "farm"
    write_campaign(d / "one", [("a", "p")], 1)
    assert cli.main(["--campaigns-dir", str(d)]) == 0
    app = opened[0]
    assert app.feed.campaigns_dir == d and app.campaign is None   # chosen when it mounts
    monkeypatch.setenv("POSTDECK_CAMPAIGNS_DIR", str(d))
    assert cli.main([]) == 0 and opened[1].feed.campaigns_dir == d


def test_opens_focused_on_a_campaign(tmp_path, opened):
    d = tmp_path / "farm"
    write_campaign(d / "one", [("a", "p")], 1)
    outside = write_campaign(tmp_path / "elsewhere" / "two", [("b", "q")], 1)
    assert cli.main(["--campaigns-dir", str(d), "--campaign", "one"]) == 0
    assert opened[0].campaign == "one" and opened[0].opened_with_campaign
    assert cli.main(["--campaigns-dir", str(d), "--campaign", str(outside)]) == 0
    assert opened[1].campaign == "two" and "two" in opened[1].feed.roots()


def test_refuses_what_does_not_exist(tmp_path, opened, capsys):
    assert cli.main(["--campaigns-dir", str(tmp_path / "nope")]) == 1
    assert "campaigns folder does not exist" in capsys.readouterr().err
    (tmp_path / "farm").mkdir()
    assert cli.main(["--campaigns-dir", str(tmp_path / "farm"), "--campaign", "ghost"]) == 1
    assert "no campaign 'ghost'" in capsys.readouterr().err
    assert opened == []


@async_test
async def test_an_empty_folder_opens_and_says_so(tmp_path):
    d = tmp_path / "farm"
    d.mkdir()
    app = PostdeckApp(d, None, poll_interval=0.2, blink=False)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await next_frame(pilot)
        assert app.campaign is None
        await pilot.press("S")
        await until_notified(pilot, "no campaign", "warning")
