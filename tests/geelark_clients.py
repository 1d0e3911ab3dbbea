"""A Geelark client for the tests against the local fake server: its clock and sleeps are the
test's FakeTime (nothing waits), its limiter never gets in the way, and its jitter is seeded."""
from __future__ import annotations

import random

from engine.devices.geelark import GeelarkClient, KeyAuth, RateLimiter

from geelark_fake_server import TEST_API_KEY, TEST_APP_ID


def fake_time_client(server, fake_time, *, seed: int, auth=None, **kw) -> GeelarkClient:
    kw.setdefault("limiter", RateLimiter(10_000, clock=fake_time.clock, sleep=fake_time.sleep))
    kw.setdefault("timeout", 2.0)
    kw.setdefault("wall_clock", fake_time.clock)
    return GeelarkClient(auth or KeyAuth(TEST_APP_ID, TEST_API_KEY), base_url=server.url,
                         sleep=fake_time.sleep, clock=fake_time.clock,
                         rng=random.Random(seed), **kw)
