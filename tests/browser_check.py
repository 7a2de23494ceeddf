"""Load built pages in headless Chromium with the network cut, and report what a reader would see wrong.

One browser serves every page (a fresh tab each). It is driven over the Chrome DevTools protocol
on a pipe (`--remote-debugging-pipe`: JSON messages ended by NUL on file descriptors 3 and 4), so
no port is opened and no websocket package is needed. The network is cut by starting the browser
in an empty network namespace (`unshare -n`) when that is allowed, and in any case by resolving
every host name to nowhere; every request that is not a local file is reported either way.

    with Browser() as b:
        page = b.inspect("file:///.../index.html")
        page.problems()      # [] when the page is clean

Run as a script to inspect pages by hand: `python tests/browser_check.py _build/html/index.html`.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--no-default-browser-check", "--disable-features=Translate,MediaRouter,OptimizationHints",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1280,900",
         "--remote-debugging-pipe", "about:blank"]
LOCAL = ("file:", "data:", "blob:", "about:")

# raw TeX a reader should never see: delimiters MathJax did not consume, $...$, \commands, ^{ _{
RAW_TEX = [
    (re.compile(r"\\[()\[\]]"), "TeX delimiter"),
    (re.compile(r"\$\$|\$[^$\s][^$\n]{0,200}?\$"), "dollar math"),
    (re.compile(r"\\[A-Za-z]{2,}"), "TeX command"),
    (re.compile(r"[\^_]\{"), "TeX sub/superscript"),
]

# The navigated page itself, fully loaded (a load event of the initial about:blank can come first).
WAIT_FOR_PAGE = """(async () => {
  const t0 = Date.now();
  while (!(location.href !== 'about:blank' && document.readyState === 'complete'
           && document.head && document.body)) {
    if (Date.now() - t0 > %d) return false;
    await new Promise(r => setTimeout(r, 50));
  }
  return true;
})()"""

WAIT_FOR_MATHJAX = """(async () => {
  const t0 = Date.now();
  const script = [...document.scripts].some(s => /mathjax|tex-(mml|chtml|svg)/i.test(s.src));
  if (!script) return "no MathJax on this page";
  while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
    if (Date.now() - t0 > %d) return "MathJax did not start";
    await new Promise(r => setTimeout(r, 50));
  }
  await MathJax.startup.promise;
  return "typeset";
})()"""

COLLECT = """(() => {
  const hide = document.createElement('style');
  hide.textContent = 'pre, code, kbd, samp, .highlight, script, style, mjx-assistive-mml '
                   + '{display: none !important}';
  document.head.appendChild(hide);
  const text = document.body ? document.body.innerText : '';
  const links = [...document.querySelectorAll('nav a, .toctree-wrapper a, a.reference')]
    .filter(a => !a.closest('pre, code, .highlight')).map(a => a.textContent);
  hide.remove();
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
    .map(i => i.getAttribute('src') || '(no src)');
  const merr = [...document.querySelectorAll('mjx-merror')]
    .map(e => e.getAttribute('data-mjx-error') || e.textContent);
  return {title: document.title, text, links, broken, merr};
})()"""


def raw_tex(text: str) -> list[str]:
    """Raw TeX fragments in visible text, each with a little context."""
    out = []
    for rx, what in RAW_TEX:
        for m in rx.finditer(text):
            ctx = text[max(0, m.start() - 30):m.end() + 30].replace("\n", " ")
            out.append(f"{what} {m.group(0)!r} in '...{ctx}...'")
    return out


@dataclass
class PageReport:
    url: str
    title: str = ""
    mathjax: str = ""
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    non_local_requests: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    raw_tex: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = [f"console error: {e}" for e in self.console_errors]
        out += [f"failed request: {r}" for r in self.failed_requests]
        out += [f"request that is not a local file: {r}" for r in self.non_local_requests]
        out += [f"broken image: {s}" for s in self.broken_images]
        out += [f"raw TeX: {t}" for t in self.raw_tex]
        if self.mathjax == "MathJax did not start":
            out.append("MathJax did not start (is it vendored into the book?)")
        return out


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            real = Path("/usr/lib/chromium/chromium")  # Debian's binary, without the wrapper script
            return str(real) if name == "chromium" and real.exists() else path
    return None


def _network_cut_prefix() -> list[str]:
    """`unshare -n` (an empty network namespace) when it works here, else nothing."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


class Browser:
    def __init__(self, binary: str | None = None, timeout: float = 30.0):
        self.binary = binary or find_chromium()
        if self.binary is None:
            raise FileNotFoundError("no chromium found (Debian: apt-get install chromium)")
        self.timeout = timeout
        self.network_cut = False
        self._id = 0
        self._replies: dict[int, queue.Queue] = {}
        self._events: queue.Queue = queue.Queue()
        self._lock = threading.Lock()

    def __enter__(self) -> Browser:
        self.profile = tempfile.mkdtemp(prefix="moebook-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds_3_and_4():
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        prefix = _network_cut_prefix()
        self.network_cut = bool(prefix)
        self.proc = subprocess.Popen(
            [*prefix, self.binary, *FLAGS[:-1], f"--user-data-dir={self.profile}", FLAGS[-1]],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=fds_3_and_4)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        threading.Thread(target=self._read, daemon=True).start()
        self.call("Target.getTargets")  # the browser answers: it is up
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- protocol ------------------------------------------------------------------------------
    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_chrome, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                if "id" in msg and msg["id"] in self._replies:
                    self._replies[msg["id"]].put(msg)
                elif "method" in msg:
                    self._events.put(msg)

    def call(self, method: str, session: str | None = None, timeout: float | None = None, **params):
        with self._lock:
            self._id += 1
            n = self._id
            self._replies[n] = queue.Queue()
        msg = {"id": n, "method": method, "params": params} | ({"sessionId": session} if session else {})
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        try:
            reply = self._replies[n].get(timeout=timeout or self.timeout)
        except queue.Empty:
            wait = timeout or self.timeout
            raise TimeoutError(f"chromium did not answer {method} within {wait} s") from None
        finally:
            del self._replies[n]
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def _drain(self, session: str, until: str | None = None, deadline: float = 0.0) -> list[dict]:
        """Events of a session (waiting for `until` if given); other sessions' events are dropped."""
        got = []
        while True:
            wait = max(0.0, deadline - time.monotonic()) if until else 0.0
            try:
                ev = self._events.get(timeout=wait) if until else self._events.get_nowait()
            except queue.Empty:
                return got
            if ev.get("sessionId") == session:
                got.append(ev)
                if until and ev["method"] == until:
                    return got

    def evaluate(self, session: str, expression: str, timeout: float | None = None):
        res = self.call("Runtime.evaluate", session=session, timeout=timeout, expression=expression,
                        awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def _wait_for_page(self, session: str) -> None:
        """Until the navigated document is complete; a context destroyed by the navigation is retried."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate(session, WAIT_FOR_PAGE % 1000, timeout=5):
                    return
            except RuntimeError:  # the old document went away while we asked: ask the new one
                time.sleep(0.05)

    # -- one page ------------------------------------------------------------------------------
    def inspect(self, url: str, mathjax_timeout_ms: int = 3000) -> PageReport:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        rep = PageReport(url)
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable", session=session)
            self._drain(session)
            self.call("Page.navigate", session=session, url=url)
            events = self._drain(session, until="Page.loadEventFired",
                                 deadline=time.monotonic() + self.timeout)
            self._wait_for_page(session)
            rep.mathjax = self.evaluate(session, WAIT_FOR_MATHJAX % mathjax_timeout_ms,
                                        timeout=mathjax_timeout_ms / 1000 + 5)
            seen = self.evaluate(session, COLLECT)
            events += self._drain(session)
        finally:
            self.call("Target.closeTarget", targetId=target)
        if not any(e["method"] == "Page.loadEventFired" for e in events):
            rep.console_errors.append(f"page did not finish loading within {self.timeout} s")
        self._classify(rep, events)
        rep.title = seen["title"]
        rep.broken_images = seen["broken"]
        rep.raw_tex = raw_tex(seen["title"]) + raw_tex(seen["text"]) + raw_tex("\n".join(seen["links"]))
        rep.raw_tex = list(dict.fromkeys(rep.raw_tex))
        rep.console_errors += [f"MathJax error: {e}" for e in seen["merr"]]
        return rep

    @staticmethod
    def _classify(rep: PageReport, events: list[dict]) -> None:
        urls = {}
        for ev in events:
            p = ev.get("params", {})
            m = ev["method"]
            if m == "Network.requestWillBeSent":
                u = p["request"]["url"]
                urls[p["requestId"]] = u
                if not u.startswith(LOCAL):
                    rep.non_local_requests.append(u)
            elif m == "Network.loadingFailed":
                rep.failed_requests.append(f"{_short(urls.get(p['requestId'], '?'))} ({p.get('errorText')})")
            elif m == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                rep.console_errors.append((d.get("exception") or {}).get("description") or d.get("text", ""))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                rep.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                   for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                e = p["entry"]
                rep.console_errors.append(f"{e.get('text', '')} {_short(e.get('url', ''))}".strip())
        rep.console_errors = [e.splitlines()[0] if e else e for e in rep.console_errors]


def _short(url: str) -> str:
    return re.sub(r"^file://.*?/_build/html/", "", url)


if __name__ == "__main__":
    with Browser() as b:
        print(f"network cut: {b.network_cut}")
        for arg in sys.argv[1:]:
            t0 = time.monotonic()
            r = b.inspect(Path(arg).resolve().as_uri())
            ok = "ok" if not r.problems() else ""
            print(f"{arg} ({time.monotonic() - t0:.1f} s, {r.mathjax}): {ok}")
            for p in r.problems():
                print("   ", p)
