"""The backends that drive real phones: `geelark` (cloud phones started through Geelark's API and
reached over ADB) and `adb` (phones attached to this host). Both push the video over ADB, talk to
the worker's own Appium server, and walk the posting flow from engine/flows/. What differs is the
PhoneProvider: how a phone is listed, made reachable over adb, and powered off."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Protocol

from ..errors import PostError
from ..problems import InputError
from .adb import Adb, LocalAdbPhones
from .appium import AppiumServer, AppiumSession, stop_recorded_servers
from .base import PhoneBackend, PostRequest, WorkerSlot
from .flow import FlowError, load_flow

log = logging.getLogger(__name__)


class PhoneProvider(Protocol):
    def list_phones(self) -> list[str]:
        """The phones it can make reachable, by the names accounts.txt uses."""

    def connect(self, phone: str, adb: Adb) -> str:
        """Make the phone reachable over adb (start it, connect, log in) and return its serial."""

    def power_off(self, phone: str) -> None:
        """Turn one phone off after its work, raising when it could not be; a no-op for phones
        attached to the host."""

    def stop(self, phones: list[str]) -> object:
        """Power the phones off where that is the provider's to do (cloud phones bill by the
        minute); a no-op for phones attached to the host."""


class RealBackend(PhoneBackend):
    def __init__(self, name: str, provider: PhoneProvider, adb: Adb, appium_dir: Path,
                 flow: str, capabilities: dict | None = None):
        self.name = name
        self.provider = provider
        self.adb = adb
        self.appium_dir = Path(appium_dir)
        self.flow = load_flow(flow)
        self.extra_caps = dict(capabilities or {})
        self._serials: dict[str, str] = {}
        self._server: AppiumServer | None = None

    def list_phones(self) -> list[str]:
        return self.provider.list_phones()

    def check(self) -> None:
        self.adb.executable()
        appium = AppiumServer.for_slot(WorkerSlot.for_index(0, self.appium_dir), self.appium_dir)
        if not appium.appium_bin.exists():
            raise PostError(f"Appium is not installed: {appium.appium_bin} does not exist; "
                            f"run `npm ci --ignore-scripts` in {appium.base_dir}",
                            error_type="appium_not_installed")

    def _server_for(self, slot: WorkerSlot) -> AppiumServer:
        if self._server is None:
            self._server = AppiumServer.for_slot(slot, self.appium_dir)
        return self._server

    def prepare(self, phone: str, slot: WorkerSlot) -> None:
        self._serials[phone] = self.provider.connect(phone, self.adb)
        self._server_for(slot).ensure_running()

    def post(self, request: PostRequest, slot: WorkerSlot,
             on_publishing: Callable[[], None]) -> str | None:
        serial = self._serials.get(request.phone)
        if serial is None:
            raise PostError(f"phone {request.phone} was not prepared", error_type="device_offline")
        if not request.video_path.is_file():
            raise PostError(f"video file not found: {request.video_path}",
                            error_type="video_missing", category="content")
        server = self._server_for(slot)
        remote = self.adb.push_media(serial, request.video_path)
        try:
            caps = server.capabilities(serial, extra=self.extra_caps)
            with AppiumSession.on(server, caps) as session:
                try:
                    session.run_flow(self.flow, caption=request.caption, on_publishing=on_publishing)
                except Exception:
                    # The phone's last screen, while the session still shows it; bounded, never
                    # raising, and the attempt's own error goes up unchanged.
                    if request.evidence_dir is not None:
                        session.capture_evidence(request.evidence_dir, label=request.job_id)
                    raise
        finally:
            try:
                self.adb.remove_media(serial, remote)
            except PostError as exc:  # a leftover file is harmless; the post's outcome is not
                log.warning("could not remove %s from %s: %s", remote, serial, exc)
        return None

    def shutdown(self, slot: WorkerSlot) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def power_off(self, phone: str) -> None:
        # The worker's Appium server stays up for its next phone; only the phone stops.
        self._serials.pop(phone, None)
        self.provider.power_off(phone)

    def stop_phones(self, phones: list[str]) -> None:
        stop_recorded_servers(self.appium_dir)
        if phones:
            self.provider.stop(phones)


def make_real_backend(ctx, name: str, checking: bool = False) -> RealBackend:
    """`checking`: built only to check the backend before a run (one or two API calls), which
    must leave no file behind when the run is refused, so it keeps to the process's own rate
    limiter instead of the host's shared budget file."""
    settings = ctx.settings
    adb = Adb()
    if name == "geelark":
        from .api_budget import host_budget
        from .geelark import GeelarkClient, GeelarkPhones
        limiter = None if checking else host_budget(ctx.host_state_dir)
        provider = GeelarkPhones(GeelarkClient.from_env(limiter=limiter))
    else:
        provider = LocalAdbPhones(adb)
    try:
        return RealBackend(name, provider, adb, ctx.state_dir / "appium", settings.flow,
                           settings.appium_capabilities)
    except FlowError as exc:
        raise InputError(ctx.root / "campaign.json", None, f"flow {settings.flow!r}: {exc}") from None
