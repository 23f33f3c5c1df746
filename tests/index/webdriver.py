"""webdriver.py — Debian's headless chromium driven through chromedriver's
W3C WebDriver protocol (JSON over HTTP, so Python's standard library is
the whole client).

    with Browser() as b:
        b.get("http://127.0.0.1:8780/")
        n = b.js("return document.querySelectorAll('.cell').length")

The browser runs with a throwaway --user-data-dir; on exit the session is
closed, chromedriver stopped, and any process still holding that
directory in its command line (this run's chromium and its helpers, and
only those) is killed, so nothing is left behind.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def free_port():
    """Returns a TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One headless chromium session."""

    def __init__(self, width=1400, height=1000):
        self.size = (width, height)
        self.dir = tempfile.mkdtemp(prefix="hvn-chromium-")
        self.port = free_port()
        self.driver = None
        self.session = None

    def _call(self, method, path, body=None, timeout=30):
        """Returns the value of a WebDriver command; raises on an error."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read().decode()).get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError("webdriver %s %s: %s" % (method, path, e.read().decode()[:500]))

    def __enter__(self):
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, "--port=%d" % self.port, "--log-path=%s/driver.log" % self.dir],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self._call("GET", "/status", timeout=2).get("ready"):
                    break
            except (OSError, RuntimeError):
                pass
            if time.monotonic() > deadline or self.driver.poll() is not None:
                self.close()
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.05)  # chromedriver has no readiness signal but /status
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                "--user-data-dir=" + self.dir + "/profile",
                "--window-size=%d,%d" % self.size]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}}
        try:
            self.session = self._call("POST", "/session", caps, timeout=60)["sessionId"]
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def get(self, url):
        """Returns nothing once url is loaded."""
        self._call("POST", "/session/%s/url" % self.session, {"url": url}, timeout=60)

    def js(self, script, *args):
        """Returns what script (a function body) returns."""
        return self._call("POST", "/session/%s/execute/sync" % self.session,
                          {"script": script, "args": list(args)})

    def wait(self, script, timeout, *args):
        """Returns script's first truthy value within timeout seconds, or None."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(script, *args)
            if value or time.monotonic() > deadline:
                return value or None
            time.sleep(0.01)  # Polling the page: the DOM offers no handshake to WebDriver

    def screenshot(self, path):
        """Returns nothing; writes the viewport as PNG to path."""
        import base64
        png = self._call("GET", "/session/%s/screenshot" % self.session)
        with open(path, "wb") as f:
            f.write(base64.b64decode(png))

    def _leftovers(self):
        """Returns the pids whose command line names this run's profile."""
        pids = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if self.dir.encode() in f.read():
                        pids.append(int(pid))
            except OSError:
                pass
        return pids

    def close(self):
        """Returns nothing; ends the session, chromedriver and this run's chromium."""
        if self.session:
            try:
                self._call("DELETE", "/session/%s" % self.session, timeout=10)
            except Exception:
                pass
            self.session = None
        if self.driver:
            if self.driver.poll() is None:
                self.driver.terminate()
                try:
                    self.driver.wait(5)
                except subprocess.TimeoutExpired:
                    self.driver.kill()
                    self.driver.wait()
            self.driver = None
        deadline = time.monotonic() + 5
        while True:
            pids = self._leftovers()
            if not pids or time.monotonic() > deadline + 5:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL if time.monotonic() > deadline else signal.SIGTERM)
                except OSError:
                    pass
            time.sleep(0.05)
        shutil.rmtree(self.dir, ignore_errors=True)
