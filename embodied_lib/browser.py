"""The workbook as a workshop participant sees it: JupyterLab in headless Chromium, driven by Selenium.

    python -m embodied_lib.browser screenshots runs/notebooks --out runs/screenshots   # executed notebooks
    python -m embodied_lib.browser commands --out runs/screenshots "go to row 3 column 4" "what is the capital of france"

The browser and its driver are Debian's (`chromium`, `chromium-driver`; `make setup` installs them as root):
nothing is downloaded at run time. JupyterLab listens on 127.0.0.1 with a random token, its settings and
workspaces in a temporary folder, and its kernels on IPC sockets.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from embodied_lib.cli import require_folder, require_writable
from embodied_lib.config import RUNS_DIR

INSTALL_HINT = ("install Debian's chromium and chromium-driver (as root: apt-get install chromium chromium-driver; "
                "`make setup` does it when run as root)")
LAB_SETTINGS = {
    # no news or update checks (no network), every cell in the page (screenshots, waiting for outputs)
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


class BrowserUnavailable(RuntimeError):
    """No chromium or chromedriver on this machine."""


class BrowserCheckFailed(RuntimeError):
    """The page did not reach the expected state in time."""


def find_browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        missing = " and ".join(n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p)
        raise BrowserUnavailable(f"{missing} not found: {INSTALL_HINT}")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyterlab(root_dir: Path, env: dict | None = None, timeout_s: float = 90):
    """A JupyterLab server serving ``root_dir``; yields ``(base_url, token)``. Its log goes to a temporary file,
    shown in the error if it does not come up."""
    token, port = secrets.token_hex(16), _free_port()
    state = Path(tempfile.mkdtemp(prefix="embodied-lab-"))
    for name, value in LAB_SETTINGS.items():
        path = state / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
           f"--LabApp.user_settings_dir={state / 'settings'}", f"--LabApp.workspaces_dir={state / 'workspaces'}",
           "--KernelManager.transport=ipc", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")   # JupyterLab refuses root otherwise; CI containers run as root
    log = open(state / "jupyterlab.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise BrowserCheckFailed(f"JupyterLab exited ({server.returncode}):\n{(state / 'jupyterlab.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BrowserCheckFailed(f"JupyterLab did not answer within {timeout_s:.0f} s:\n"
                                         f"{(state / 'jupyterlab.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(state, ignore_errors=True)


def chrome(width: int = 1400, height: int = 1100):
    """Headless Chromium from Debian's packages, through its chromedriver (Selenium Manager is never asked)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver = find_browser()
    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", "--disable-component-update",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def trust(notebook: Path) -> None:
    """Sign an executed notebook as this user's, so JupyterLab shows its saved widgets and HTML as they ran."""
    import nbformat
    from nbformat.sign import NotebookNotary

    nb = nbformat.read(str(notebook), as_version=4)
    NotebookNotary().sign(nb)


def _wait(driver, condition, timeout_s: float, what: str, poll_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception:   # the page is still rendering: elements come and go
            pass
        time.sleep(poll_s)
    raise BrowserCheckFailed(f"timed out after {timeout_s:.0f} s waiting for {what} (page: {driver.title!r})")


def open_notebook(driver, base: str, token: str, relative: str, timeout_s: float = 120, workspace: str = "default"):
    """Open ``relative`` in a JupyterLab workspace of its own browser, reset to that one notebook: browsers sharing
    the server's default workspace restore each other's open notebooks (a make test run timed out waiting for a
    kernel under a page titled '03_hri_disti… (2)')."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/lab/workspaces/{workspace}/tree/{relative}?reset&token={token}")
    _wait(driver, lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), timeout_s,
          f"{relative} to open")
    _wait(driver, lambda: _kernel_idle(driver), timeout_s, f"{relative}'s kernel to be idle")
    time.sleep(1.5)   # outputs (images, widgets) finish drawing


def _kernel_idle(driver) -> bool:
    from selenium.webdriver.common.by import By

    status = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator")
    return bool(status) and status[0].get_attribute("data-status") == "idle"


def screenshot_pages(driver, out_prefix: Path, max_pages: int = 40) -> list[Path]:
    """Screenshots of the open notebook from top to bottom, one per screen."""
    scroller = ("const n = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer')"
                " || document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');")
    shots = []
    driver.execute_script(scroller + "n.scrollTop = 0;")
    for page in range(max_pages):
        time.sleep(0.4)
        path = out_prefix.parent / f"{out_prefix.name}_{page + 1:02d}.png"
        driver.save_screenshot(str(path))
        shots.append(path)
        moved = driver.execute_script(scroller + "const before = n.scrollTop; n.scrollTop += n.clientHeight * 0.9;"
                                      " return n.scrollTop > before;")
        if not moved:
            break
    return shots


# What a reader must never see in a rendered notebook: Markdown that did not become a table (a "|" inside a cell
# ends it), an image that did not load, a widget that did not render (its placeholder text, or the text/plain
# fallback of a widget object).
RENDERING_PROBLEMS_JS = r"""
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
const problems = [];
const short = (t) => t.replace(/\s+/g, ' ').trim().slice(0, 120);
panel.querySelectorAll('.jp-RenderedMarkdown').forEach((el) => {
  for (const line of (el.innerText || '').split('\n')) {
    if (/^\s*\|.*\|\s*$/.test(line) || /\|\s*:?-{3,}:?\s*\|/.test(line)) {
      problems.push('raw Markdown table text: ' + short(line)); break; }
  }
});
panel.querySelectorAll('.jp-OutputArea-output').forEach((el) => {
  const text = el.innerText || '';
  if (/Error displaying widget|Loading widget|Widget Javascript not detected|model not found/i.test(text))
    problems.push('widget placeholder: ' + short(text));
  else if (/^\s*(VBox|HBox|Box|Image|IntSlider|Play|HTML|Text|Output|Button)\((children|value|layout|description)=/.test(text))
    problems.push('widget shown as text: ' + short(text));
  el.querySelectorAll('img').forEach((img) => {
    if (!img.complete || img.naturalWidth === 0) problems.push('broken image: ' + short(img.alt || img.src || ''));
  });
});
return problems;
"""


class Rendered(NamedTuple):
    """One executed notebook as JupyterLab showed it."""
    screenshots: list[Path]
    problems: list[str]   # what RENDERING_PROBLEMS_JS found; empty when the page reads well


def rendering_problems(driver) -> list[str]:
    """What the open notebook shows that a reader should not see (raw table text, broken images, widget
    placeholders), after scrolling through it so every output has been drawn."""
    return list(dict.fromkeys(driver.execute_script(RENDERING_PROBLEMS_JS)))


def screenshot_notebooks(executed_dir: Path, out_dir: Path, env: dict | None = None,
                        browsers: int = 2) -> dict[str, Rendered]:
    """Open every executed notebook in ``executed_dir`` in JupyterLab, screenshot it top to bottom and check what
    it shows (``rendering_problems``). ``browsers`` headless Chromiums share one JupyterLab, each taking every
    ``browsers``-th notebook: most of a page's time is waiting (its kernel starting, outputs drawing, the pause
    before each screenshot), so two take about half the time of one."""
    executed_dir, out_dir = Path(executed_dir).resolve(), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = sorted(executed_dir.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no executed notebooks in {executed_dir}: run `make run` first")
    for nb in notebooks:
        trust(nb)
    shots = {}
    with jupyterlab(executed_dir, env) as (base, token):
        def shoot(share, workspace):
            driver = chrome()
            try:
                for nb in share:
                    open_notebook(driver, base, token, nb.name, workspace=workspace)
                    pages = screenshot_pages(driver, out_dir / nb.stem)
                    shots[nb.stem] = Rendered(pages, rendering_problems(driver))
                    _shut_down_kernel(base, token, nb.name)   # one kernel per browser at a time, not eight
            finally:
                driver.quit()

        shares = [notebooks[i::browsers] for i in range(max(1, browsers)) if notebooks[i::browsers]]
        with ThreadPoolExecutor(len(shares)) as pool:
            for done in [pool.submit(shoot, share, f"browser{i}") for i, share in enumerate(shares)]:
                done.result()   # a failure in either browser raises here
    return dict(sorted(shots.items()))


def run_and_type_commands(notebook: Path, commands: list[str], out_dir: Path, env: dict | None = None,
                          run_timeout_s: float = 900) -> list[dict]:
    """Open ``notebook`` (03), run all its cells in the browser, type each command into its command box and press
    Enter; the decision rows the page rendered for them (newest first), with screenshots in ``out_dir``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    notebook, out_dir = Path(notebook).resolve(), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with jupyterlab(notebook.parent, env) as (base, token):
        driver = chrome()
        try:
            open_notebook(driver, base, token, notebook.name)
            _click_menu(driver, "Run", "runmenu:run-all")
            # done when no code cell waits or runs ("[*]:") and the last code cell has an execution count
            _wait(driver, lambda: _all_cells_ran(driver), run_timeout_s, f"{notebook.name} to run", poll_s=3)
            tracebacks = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")]
            if tracebacks:
                raise BrowserCheckFailed(f"{notebook.name} failed in the browser: {tracebacks[0][-800:]}")
            box = _wait(driver, lambda: driver.find_elements(By.CSS_SELECTOR, ".widget-text input[type='text']"), 60,
                        "the command box")[0]
            rendered = []
            for text in commands:
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
                box.click()
                box.send_keys(Keys.CONTROL, "a")
                box.send_keys(text, Keys.ENTER)
                row = _wait(driver, lambda: _newest_row(driver, text), 60, f"the decision for {text!r}")
                rendered.append(row)
                slug = "".join(ch if ch.isalnum() else "_" for ch in text)[:40]
                driver.save_screenshot(str(out_dir / f"{notebook.stem}_live_{len(rendered)}_{slug}.png"))
            return rendered
        finally:
            driver.quit()


def _shut_down_kernel(base: str, token: str, notebook_name: str) -> None:
    """Stop the kernel JupyterLab started for ``notebook_name`` (and only that one: another browser may be
    looking at another notebook)."""
    headers = {"Authorization": f"token {token}"}
    with urllib.request.urlopen(urllib.request.Request(f"{base}/api/sessions", headers=headers), timeout=10) as r:
        sessions = json.loads(r.read())
    for s in sessions:
        if Path(s.get("path") or s.get("notebook", {}).get("path", "")).name == notebook_name:
            urllib.request.urlopen(urllib.request.Request(f"{base}/api/sessions/{s['id']}", method="DELETE",
                                                          headers=headers), timeout=30).close()


def _click_menu(driver, menu: str, command: str):
    from selenium.webdriver.common.by import By

    items = [e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if e.text.strip() == menu]
    if not items:
        raise BrowserCheckFailed(f"no {menu!r} menu in JupyterLab's menu bar")
    items[0].click()
    entry = _wait(driver, lambda: driver.find_elements(By.CSS_SELECTOR, f"li.lm-Menu-item[data-command='{command}']"),
                  10, f"menu entry {command}")
    entry[0].click()


def _all_cells_ran(driver) -> bool:
    from selenium.webdriver.common.by import By

    prompts = [p.text.strip() for p in driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputArea-prompt")]
    return bool(prompts) and all(p.startswith("[") and p[1:-2].isdigit() for p in prompts) and _kernel_idle(driver)


def _newest_row(driver, text: str) -> dict | None:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "tr.embodied-decision")
    if not rows:
        return None
    cells = [c.text for c in rows[0].find_elements(By.TAG_NAME, "td")]
    if cells[0] != text:
        return None
    return dict(zip(("text", "decision", "action", "params", "confidence", "reason"), cells))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    shots = sub.add_parser("screenshots", help="screenshot every executed notebook in a folder")
    shots.add_argument("executed", type=Path, help="folder of executed notebooks (make run writes runs/notebooks)")
    shots.add_argument("--out", type=Path, default=RUNS_DIR / "screenshots")
    live = sub.add_parser("commands", help="run notebook 03 in the browser and type commands into its box")
    live.add_argument("texts", nargs="+", help="commands to type")
    live.add_argument("--notebook", type=Path, default=Path(__file__).resolve().parents[1] / "notebooks" / "03_hri_distilbert.ipynb")
    live.add_argument("--out", type=Path, default=RUNS_DIR / "screenshots")
    args = parser.parse_args(argv)
    require_writable(parser, args.out)
    if args.command == "screenshots":
        require_folder(parser, args.executed)
    try:
        if args.command == "screenshots":
            rendered = screenshot_notebooks(args.executed, args.out)
            for name, page in rendered.items():
                print(f"{name}: {len(page.screenshots)} screenshots -> {args.out}"
                      + "".join(f"\n  problem: {p}" for p in page.problems))
            if any(page.problems for page in rendered.values()):
                return 1
        else:
            for row in run_and_type_commands(args.notebook, args.texts, args.out):
                print(json.dumps(row))
    except (BrowserUnavailable, BrowserCheckFailed, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
