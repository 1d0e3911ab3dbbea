"""Phone backends. `make_backend` picks the one a campaign (or --backend) names."""
from __future__ import annotations

from ..problems import InputError
from .base import PhoneBackend, PostRequest, WorkerSlot

__all__ = ["PhoneBackend", "PostRequest", "WorkerSlot", "make_backend"]


def make_backend(ctx, name: str | None = None, checking: bool = False) -> PhoneBackend:
    name = name or ctx.settings.backend
    if name == "simulated":
        from .simulated import SimulatedBackend
        accounts = ctx.load_accounts()
        phones = list(dict.fromkeys(a.phone for a in accounts))
        return SimulatedBackend(phones, ctx.settings.simulation)
    if name in ("geelark", "adb"):
        from .real import make_real_backend
        return make_real_backend(ctx, name, checking)
    if name == "geelark-task":
        from .geelark_task import make_task_backend
        return make_task_backend(ctx, checking)
    raise InputError(ctx.root / "campaign.json", None, f"unknown backend {name!r}")
