"""`postdeck` without --no-ui: open the console on the campaigns folder, focused on --campaign
when given."""
from __future__ import annotations

import sys
from pathlib import Path

from engine.campaigns import resolve_campaign_dir
from engine.context import default_campaigns_dir
from engine.problems import InputError


def open_console(args) -> int:
    campaigns_dir = Path(args.campaigns_dir or default_campaigns_dir())
    campaign, extra = None, []
    if args.campaign:
        try:
            root = resolve_campaign_dir(campaigns_dir, args.campaign)
        except InputError as exc:
            print(f"postdeck: {exc}", file=sys.stderr)
            return 1
        campaign = root.name
        if root.resolve().parent != campaigns_dir.resolve():
            extra.append(root)
    elif not campaigns_dir.is_dir():
        print(f"postdeck: {campaigns_dir}: the campaigns folder does not exist; create it or "
              "pass --campaigns-dir", file=sys.stderr)
        return 1
    from .app import PostdeckApp
    app = PostdeckApp(campaigns_dir, campaign, extra_roots=extra)
    result = app.run()
    return result if isinstance(result, int) else 0
