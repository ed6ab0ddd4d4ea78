#!/usr/bin/env python3
"""Open HTML files in headless Chromium, write a PNG screenshot of each, and fail on console errors.

    python .ci/screenshot_html.py PAGE.html [PAGE2.html ...] [--out-dir DIR] [--width 1400] [--height 1000]
                                  [--full-page] [--hover CSS_SELECTOR] [--no-network] [--chromium PATH]

For each page it reports, and fails (exit status 1) on:
  - console.error / console.assert calls and uncaught exceptions (Runtime domain),
  - browser log entries of level "error" (failed loads, blocked content: Log domain),
  - with --no-network, any request that is not file:, data:, blob: or about: (the page must be self-contained),
  - a page that does not finish loading within --timeout seconds.

It talks to Chromium over the DevTools protocol through --remote-debugging-pipe (file descriptors 3 and 4,
NUL-terminated JSON messages), so it needs nothing beyond the Python standard library and a Chromium binary
(Debian: apt-get install chromium).
"""
from __future__ import annotations
import argparse, base64, fcntl, itertools, json, os, queue, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path

LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:")

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe"]


class Browser:
    "A headless Chromium driven over the DevTools pipe."

    def __init__(self, binary:str, timeout:float):
        self.timeout, self.ids, self.events = timeout, itertools.count(1), queue.Queue()
        self.profile = tempfile.mkdtemp(prefix="saenb-chromium-")
        to_browser_r, self.to_browser = os.pipe()          # we write commands to fd 3 of the browser
        self.from_browser, from_browser_w = os.pipe()      # it writes responses and events to fd 4
        def child_fds():                                    # in the child: the pipe ends at fds 3 and 4
            r, w = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3); os.dup2(w, 4)                    # dup2's copies are inheritable; the others close at exec
        self.proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=child_fds, close_fds=False)
        os.close(to_browser_r); os.close(from_browser_w)
        self.responses: dict[int, dict] = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self):
        self.stderr_tail: list[str] = []
        for line in iter(self.proc.stderr.readline, b""):
            self.stderr_tail = (self.stderr_tail + [line.decode(errors="replace").rstrip()])[-40:]

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk: break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self.cond: self.responses[msg["id"]] = msg; self.cond.notify_all()
                else: self.events.put(msg)
        with self.cond: self.cond.notify_all()

    def send(self, method:str, session:str|None=None, **params) -> dict:
        "Send one command and wait for its result."
        msg_id = next(self.ids)
        msg = {"id": msg_id, "method": method, "params": params}
        if session: msg["sessionId"] = session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + self.timeout
        with self.cond:
            while msg_id not in self.responses:
                if self.proc.poll() is not None: raise RuntimeError(f"Chromium exited: {self._stderr()}")
                if not self.cond.wait(timeout=max(0.0, deadline - time.time())) and time.time() >= deadline:
                    raise TimeoutError(f"{method} got no answer in {self.timeout} s")
            reply = self.responses.pop(msg_id)
        if "error" in reply: raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def _stderr(self) -> str: return "\n".join(getattr(self, "stderr_tail", []))

    def close(self):
        try: self.send("Browser.close")
        except Exception: pass
        try: self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def _describe_console(params:dict) -> str:
    args = [a.get("value", a.get("description", a.get("type"))) for a in params.get("args", [])]
    return f"console.{params.get('type')}: " + " ".join(str(a) for a in args)

def _describe_exception(params:dict) -> str:
    d = params.get("exceptionDetails", {})
    return f"uncaught exception: {d.get('exception', {}).get('description') or d.get('text')} (line {d.get('lineNumber')})"


def screenshot(browser:Browser, page:Path, png:Path, width:int, height:int, full_page:bool, hover:str|None,
               no_network:bool, settle:float) -> tuple[list[str], list[str]]:
    "Load `page`, write `png`; returns (errors, notes)."
    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"): browser.send(f"{domain}.enable", session)
    browser.send("Emulation.setDeviceMetricsOverride", session, width=width, height=height, deviceScaleFactor=1,
                 mobile=False)
    errors, notes = [], []
    browser.send("Page.navigate", session, url=page.resolve().as_uri())
    loaded, deadline = False, time.time() + browser.timeout
    def handle(ev:dict):
        nonlocal loaded
        if ev.get("sessionId") != session: return
        m, p = ev["method"], ev.get("params", {})
        if m == "Page.loadEventFired": loaded = True
        elif m == "Runtime.consoleAPICalled":
            line = _describe_console(p)
            (errors if p.get("type") in ("error", "assert") else notes).append(line)
        elif m == "Runtime.exceptionThrown": errors.append(_describe_exception(p))
        elif m == "Log.entryAdded":
            e = p.get("entry", {})
            line = f"log {e.get('level')} ({e.get('source')}): {e.get('text')} {e.get('url', '')}".rstrip()
            (errors if e.get("level") == "error" else notes).append(line)
        elif m == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            if not url.startswith(LOCAL_SCHEMES):
                (errors if no_network else notes).append(f"network request: {url}")
        elif m == "Network.loadingFailed":
            errors.append(f"load failed: {p.get('errorText')} ({p.get('type')})")
    while not loaded and time.time() < deadline:
        try: handle(browser.events.get(timeout=0.2))
        except queue.Empty: pass
    if not loaded: errors.append(f"page did not finish loading in {browser.timeout} s")
    if hover:
        box = browser.send("Runtime.evaluate", session, returnByValue=True, expression=(
            f"(() => {{ const el = document.querySelector({json.dumps(hover)}); if (!el) return null;"
            " el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"))["result"].get("value")
        if box is None: errors.append(f"--hover {hover!r}: no element matches")
        else: browser.send("Input.dispatchMouseEvent", session, type="mouseMoved", x=box[0], y=box[1])
    end = time.time() + settle                              # let late script errors and requests arrive
    while time.time() < end:
        try: handle(browser.events.get(timeout=0.05))
        except queue.Empty: pass
    shot = {"format": "png"}
    if full_page:
        size = browser.send("Page.getLayoutMetrics", session)["cssContentSize"]
        shot.update(captureBeyondViewport=True,
                    clip={"x": 0, "y": 0, "width": width, "height": min(size["height"], 16000), "scale": 1})
    data = browser.send("Page.captureScreenshot", session, **shot)["data"]
    png.parent.mkdir(parents=True, exist_ok=True)
    png.write_bytes(base64.b64decode(data))
    while True:                                             # anything that arrived while capturing
        try: handle(browser.events.get_nowait())
        except queue.Empty: break
    browser.send("Target.closeTarget", targetId=target)
    return errors, notes


def main(argv:list[str]|None=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pages", nargs="+", type=Path, help="HTML files to open")
    p.add_argument("--out-dir", type=Path, default=None, help="where PNGs go (default: next to each page)")
    p.add_argument("--width", type=int, default=1400); p.add_argument("--height", type=int, default=1000)
    p.add_argument("--full-page", action="store_true", help="capture the whole page, not just the window")
    p.add_argument("--hover", default=None, help="move the mouse over the first element matching this CSS selector")
    p.add_argument("--no-network", action="store_true", help="fail if the page requests anything over the network")
    p.add_argument("--settle", type=float, default=1.0, help="seconds to wait after load for late errors")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for each step")
    p.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser")
                   or shutil.which("google-chrome"), help="the browser binary")
    args = p.parse_args(argv)
    if not args.chromium: p.error("no Chromium found: apt-get install chromium, or pass --chromium PATH")
    missing = [str(x) for x in args.pages if not x.is_file()]
    if missing: p.error(f"no such file: {', '.join(missing)}")
    browser, failed = Browser(args.chromium, args.timeout), 0
    try:
        for page in args.pages:
            png = (args.out_dir or page.parent) / (page.stem + ".png")
            errors, notes = screenshot(browser, page, png, args.width, args.height, args.full_page, args.hover,
                                       args.no_network, args.settle)
            print(f"{'FAIL' if errors else 'ok  '} {page} -> {png} ({png.stat().st_size:,} bytes)")
            for line in errors: print(f"     error: {line}")
            for line in notes: print(f"     note: {line}")
            failed += bool(errors)
    finally: browser.close()
    print(f"{len(args.pages) - failed} pages ok, {failed} with errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
