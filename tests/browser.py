"""A real headless Chromium for tests, driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: JSON messages separated by NUL bytes on the child's fds 3 and 4), so it needs
nothing beyond the standard library and Debian's ``chromium`` package (``.ci/run`` installs it).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _high(fd: int) -> int:
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


@dataclass
class PageReport:
    images: list[dict]  # alt, complete, naturalWidth, naturalHeight, src scheme
    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions, failed loads
    requests: list[str] = field(default_factory=list)  # every URL the page asked for


class Chromium:
    """``with Chromium(binary) as c: report = c.open(path, screenshot=png_path)``."""

    def __init__(self, binary: str, timeout: float = 60.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="optai-chromium-")
        # every end above fd 9, so that dup2 onto 3 and 4 in the child never meets one of them (dup2 of an fd
        # onto itself would keep its close-on-exec flag)
        to_child_r, self._to_child, self._from_child, from_child_w = (_high(fd) for fd in (*os.pipe(), *os.pipe()))
        # the child reads commands on fd 3 and writes answers on fd 4
        def fds() -> None:
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        args = [
            binary, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            f"--user-data-dir={self.profile}", "--window-size=1200,900", "about:blank",
        ]  # fmt: skip
        # close_fds=False: fds 3 and 4 are made in preexec_fn (Python's own descriptors are not inheritable)
        self.proc = subprocess.Popen(args, preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._next = 0
        self.events: list[dict] = []

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- the protocol ------------------------------------------------------------------
    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        return self._next

    def _read(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited (code {self.proc.poll()})")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        mid = self._send(method, params, session)
        while True:
            msg = self._read()
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, session: str) -> dict:
        for i, msg in enumerate(self.events):
            if msg.get("method") == method and msg.get("sessionId") == session:
                return self.events.pop(i)
        while True:
            msg = self._read()
            if msg.get("method") == method and msg.get("sessionId") == session:
                return msg
            self.events.append(msg)

    # -- what a test wants ---------------------------------------------------------------
    def open(self, page: Path, screenshot: Path | None = None) -> PageReport:
        """Load ``page`` from disk, wait for its load event, and report its images and errors."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=s)
        self.call("Page.navigate", {"url": page.resolve().as_uri()}, session=s)
        self.wait_event("Page.loadEventFired", s)
        js = (
            "JSON.stringify(Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,"
            " naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight, scheme: i.src.split(':')[0]})))"
        )
        images = json.loads(self.call("Runtime.evaluate", {"expression": js, "returnByValue": True}, session=s)["result"]["value"])
        if screenshot is not None:
            shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=s)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        report = PageReport(images=images)
        for msg in self.events:
            if msg.get("sessionId") != s:
                continue
            m, p = msg.get("method"), msg.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                report.errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                report.errors.append("exception: " + p.get("exceptionDetails", {}).get("text", ""))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                report.errors.append("log: " + p["entry"].get("text", ""))
            elif m == "Network.loadingFailed":
                report.errors.append("failed load: " + p.get("errorText", ""))
            elif m == "Network.requestWillBeSent":
                report.requests.append(p.get("request", {}).get("url", ""))
        self.call("Target.closeTarget", {"targetId": target})
        return report
