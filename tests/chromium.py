"""Headless Chromium (the Debian `chromium` package) driven over the DevTools protocol:
open a page at a given viewport, collect console errors, evaluate JavaScript, take a
screenshot. No Playwright: a websocket and a dozen protocol calls are enough."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-port=0"]  # fmt: skip


@dataclass
class Page:
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    value: Any = None


class Browser:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             events: list | None = None, timeout: float = 30) -> dict:  # fmt: skip
        """Send one command and wait for its answer; events meanwhile go to `events`."""
        message_id = next(self._ids)
        message = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self._ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if events is not None and "method" in reply:
                events.append(reply)

    def wait_for(self, method: str, events: list, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e["method"] == method for e in events):
            events.append(json.loads(self._ws.recv(timeout=max(deadline - time.monotonic(), 0.1))))

    def open(self, url: str, width: int, height: int, script: str, mobile: bool = False) -> Page:
        """Load `url` at width × height, then evaluate `script` (its JSON value is
        returned) and take a full-page screenshot."""
        events: list = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session, events=events)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
                  session=session, events=events)  # fmt: skip
        self.call("Page.navigate", {"url": url}, session=session, events=events)
        self.wait_for("Page.loadEventFired", events)
        value = self.call("Runtime.evaluate", {"expression": script, "returnByValue": True},
                          session=session, events=events)["result"].get("value")  # fmt: skip
        metrics = self.call("Page.getLayoutMetrics", session=session, events=events)
        size = metrics["cssContentSize"]
        shot = self.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": min(size["height"], 16000),
                     "scale": 1},
        }, session=session, events=events)  # fmt: skip
        self.call("Target.closeTarget", {"targetId": target})
        page = Page(screenshot=base64.b64decode(shot["data"]), value=value)
        for event in events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                page.errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                page.errors.append(str(params.get("args")))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                page.errors.append(params["entry"].get("text", ""))
            elif method == "Network.requestWillBeSent":
                page.requests.append(params["request"]["url"][:60])
        return page


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium with its own throwaway profile, stopped on exit."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-"))
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=2**28, open_timeout=20) as ws:
            yield Browser(ws)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)
