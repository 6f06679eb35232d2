"""Both widgets in a real browser: JupyterLab on 127.0.0.1 and headless Chromium driven by selenium.

Notebooks 05 (judging panel) and 07 (chat) are opened at the ``ci`` profile, run all, then used as a student
would: every judging button and "undo last vote"; a chat message sent with Enter, an uploaded 64 x 64 PNG (not
the encoder's size) and a message longer than the LM's window. It checks the page (an image in each reply, no
error text, no browser console error), the votes file, and that opening a notebook does not mark it modified.

It reuses the runs folder of the notebook tests (``GILL_RUNS_DIR`` or ``runs/``): what nbval built is loaded,
what is missing is trained there (so it also works alone). The votes file it clicks into is put back as it was.
Screenshots go to ``<runs>/browser/widgets_*.png`` (``make screenshots`` copies them into figures/). Without
Chromium, chromedriver or selenium the tests skip and say why (``make setup`` installs them as root).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KERNEL = {"name": "gill-lite", "display_name": "Python (gill-lite)", "language": "python"}
RUN_ALL_TIMEOUT = 420  # seconds; a cold start trains the ci stand-ins and GILL (about a minute on 2 cores)
pytestmark = pytest.mark.slow


def runs_root() -> Path:
    return Path(os.environ.get("GILL_RUNS_DIR", REPO / "runs"))


def screenshot_dir() -> Path:
    return runs_root() / "browser"


# ================================================================================== browser and server

@pytest.fixture(scope="module")
def driver():
    """Headless Chromium through chromedriver; skips (with the reason) when either, or selenium, is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        pytest.skip(f"browser test skipped: selenium is not installed ({e}); pip install -e '.[dev]'")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("browser test skipped: chromium / chromedriver not found "
                    "(apt-get install chromium chromium-driver; `make setup` does it as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,3200", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        browser = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    except Exception as e:  # noqa: BLE001 - any failure to start means: no browser here
        first_line = (str(e).strip().splitlines() or [""])[0]
        pytest.skip(f"browser test skipped: Chromium could not be started ({type(e).__name__}: {first_line})")
    browser.set_script_timeout(30)
    yield browser
    service_pid = browser.service.process.pid if browser.service.process else None
    started = [service_pid] + _descendants(service_pid) if service_pid else []  # chromedriver, Chromium's tree
    browser.quit()
    _stop_pids(started)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, driver):
    """A JupyterLab server on 127.0.0.1 (token, autosave off) serving copies of notebooks 05 and 07."""
    home = tmp_path_factory.mktemp("lab")
    root = home / "notebooks"
    root.mkdir()
    for name in ("05_decision.ipynb", "07_dialogue.ipynb"):
        shutil.copy(REPO / "notebooks" / name, root / name)  # the tracked notebooks are never opened
    settings = home / "settings"
    _write_json(settings / "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings", {"autosave": False})
    _write_json(settings / "@jupyterlab/apputils-extension/notification.jupyterlab-settings",
                {"checkForUpdates": False, "fetchNews": "false"})
    # the registered kernel, run by this Python (the notebooks name it; the test works without `make setup`)
    _write_json(home / "share/kernels/gill-lite/kernel.json",
                {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                 "display_name": KERNEL["display_name"], "language": "python"})
    env = dict(os.environ, GILL_PROFILE="ci", MPLBACKEND="Agg", JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTER_PATH=str(home / "share"),
               IPYTHONDIR=str(home / "ipython"), GILL_RUNS_DIR=str(runs_root()),
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    port, token = _free_port(), secrets.token_hex(16)
    log = open(home / "lab.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--ServerApp.allow_root=True", "--LabApp.expose_app_in_browser=True",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(server, f"{url}/api/status?token={token}", home / "lab.log")
        yield {"url": url, "token": token, "root": root, "log": home / "lab.log"}
    finally:
        children = _descendants(server.pid)  # the kernels, recorded before the server goes
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        _stop_pids(children)
        log.close()


@pytest.fixture(scope="module")
def votes_file():
    """The ci profile's human_votes.jsonl, moved aside for the test and put back after it."""
    from gill_lite.config import get_profile
    from gill_lite.decision.stage import human_votes_path

    path = human_votes_path(get_profile("ci"))  # under GILL_RUNS_DIR or runs/, as runs_root()
    saved = path.read_bytes() if path.exists() else None
    path.unlink(missing_ok=True)
    yield path
    if saved is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(saved)


# ============================================================================================= the tests

def test_judging_panel_in_a_real_browser(driver, lab, votes_file):
    from selenium.webdriver.common.by import By

    open_and_run_all(driver, lab, "05_decision.ipynb")
    first = wait_for(driver, lambda: _visible_button(driver, "first is better"), 30, "the judging panel")
    panel = first.find_element(By.XPATH, "./ancestor::div[contains(@class,'jp-OutputArea-output')]")
    total = int(_judged_text(panel).split("/")[1].split()[0])
    assert _judged_text(panel).startswith(f"0/{total} judged")
    for n, label in enumerate(("first is better", "second is better", "about the same"), 1):
        click(driver, wait_for(driver, lambda label=label: _visible_button(driver, label), 10, f"the {label!r} button"))
        wait_for(driver, lambda n=n: _judged_text(panel).startswith(f"{n}/{total} judged"), 20, f"vote {n}")
    click(driver, wait_for(driver, lambda: _visible_button(driver, "undo last vote"), 10, "the 'undo last vote' button"))
    wait_for(driver, lambda: _judged_text(panel).startswith(f"2/{total} judged"), 20, "the undo")
    records = [json.loads(line) for line in votes_file.read_text().splitlines()]
    assert [r["choice"] for r in records] == ["first", "second"]
    assert not page_errors(driver), page_errors(driver)
    save_screenshot(panel, "widgets_judging")
    assert_no_console_errors(driver)


def test_chat_widget_in_a_real_browser(driver, lab, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_and_run_all(driver, lab, "07_dialogue.ipynb")
    text = wait_for(driver, lambda: _find(driver, "input[placeholder^='Ask something']"), 30, "the chat widget")
    widget = text.find_element(By.XPATH, "./ancestor::div[contains(@class,'jp-OutputArea-output')]")
    force = widget.find_element(By.CSS_SELECTOR, ".widget-checkbox input[type=checkbox]")
    assert force.is_selected(), "the 'always answer with an image' box must start at FORCE_IMAGE = True"
    for label in widget.find_elements(By.CSS_SELECTOR, ".widget-checkbox span, .widget-dropdown label"):
        assert driver.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth + 1", label), \
            f"label cut off: {label.text!r}"
    options = [o.text for o in widget.find_elements(By.CSS_SELECTOR, ".widget-dropdown option")]
    assert options[0] == "(no image)" and all(o.startswith("image ") for o in options[1:]), options

    def replies():
        return widget.find_elements(By.XPATH, ".//div[contains(@class,'widget-html')][.//b[text()='GILL:']]")

    def type_message(message: str) -> None:
        """Put ``message`` in the text box and wait for the kernel to have it, as it has once a person stops
        typing (Enter and the button send the kernel's copy of the text; keystrokes still on their way while
        the kernel is busy would reach it after the send)."""
        if len(message) < 200:
            text.send_keys(message)
        else:  # pasted, not typed key by key
            driver.execute_script("arguments[0].value = arguments[1];"
                                  "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", text, message)
        idle = "return window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle';"
        time.sleep(0.3)
        wait_for(driver, lambda: driver.execute_script(idle), 30, "the kernel to read the text box")

    def settled(what: str) -> None:
        """Wait until the turn is over (the kernel idle, the text box cleared, no "thinking..."), as a person
        waits for the answer before typing the next message."""
        idle = "return window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle';"
        state = lambda: (driver.execute_script(idle), text.get_attribute("value"), "thinking..." in widget.text)  # noqa: E731
        wait_for(driver, lambda: state() == (True, "", False), 30,
                 f"the end of {what} (kernel idle, text box, thinking: {state()})")

    # 1. Enter sends; FORCE_IMAGE means an image in the reply; the answer stops at its end
    n = len(replies())
    type_message("show me a small red circle at the top left")
    text.send_keys(Keys.ENTER)
    reply = wait_for(driver, lambda: replies()[n] if len(replies()) > n else None, 60, "a reply to Enter")
    # views of a new bubble render one by one: wait for its image (FORCE_IMAGE is on)
    wait_for(driver, lambda: _reply_has_image(reply), 10, "the image of the reply to Enter")
    assert not reply.text.rstrip().lower().endswith(" q"), f"stray next turn in {reply.text!r}"
    settled("the first turn")

    # 2. an upload of another size than the encoder's (the world's images are 32 x 32)
    png = tmp_path / "upload.png"
    _write_png(png, 64)
    # the upload button opens a file chooser through a detached <input type=file>; headless, the page is made
    # to attach that input instead (once) so that chromedriver can give it a file, as a person would choose it
    driver.execute_script(
        "const click = HTMLInputElement.prototype.click;"
        "HTMLInputElement.prototype.click = function () {"
        "  if (this.type !== 'file' || this.isConnected) return click.call(this);"
        "  HTMLInputElement.prototype.click = click;"
        "  this.id = 'test-upload'; this.style.display = 'block'; document.body.appendChild(this); };")
    click(driver, widget.find_element(By.CSS_SELECTOR, "button.widget-upload"))
    driver.find_element(By.ID, "test-upload").send_keys(str(png))
    wait_for(driver, lambda: "(1)" in widget.find_element(By.CSS_SELECTOR, "button.widget-upload").text, 20,
             "the upload")
    type_message("what is this?")
    click(driver, wait_for(driver, lambda: _visible_button(driver, "send"), 10, "the 'send' button"))
    wait_for(driver, lambda: len(replies()) > n + 1 or page_errors(driver), 60, "a reply to the upload")
    assert not page_errors(driver), page_errors(driver)
    wait_for(driver, lambda: _reply_has_image(replies()[-1]), 10, "the image of the reply to the upload")
    settled("the upload's turn")

    # 3. past the LM's window: the message is shortened, the chat answers and says so
    long_message = "there is a big blue square in the middle and " * 15 + "what colour is it?"  # 160 words
    type_message(long_message)
    text.send_keys(Keys.ENTER)
    wait_for(driver, lambda: len(replies()) > n + 2 or page_errors(driver), 60, "a reply past the window")
    assert not page_errors(driver), page_errors(driver)
    wait_for(driver, lambda: "to fit the language model's window" in widget.text, 10, "the note on the window")
    settled("the long turn")
    type_message("and now a green triangle")  # the chat goes on after it
    text.send_keys(Keys.ENTER)
    wait_for(driver, lambda: len(replies()) > n + 3 or page_errors(driver), 60, "a reply after it")
    settled("the last turn")
    assert not page_errors(driver), page_errors(driver)
    save_screenshot(widget, "widgets_chat")
    assert_no_console_errors(driver)


# ================================================================================================ helpers

def open_and_run_all(driver, lab, name: str) -> None:
    """Open a notebook, check that opening it did not mark it modified, run all and wait for the last cell."""
    driver.get(f"{lab['url']}/lab/tree/{name}?token={lab['token']}")
    ready = ("const p = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
             "const k = p && p.sessionContext && p.sessionContext.session && p.sessionContext.session.kernel;"
             f"return !!(p && p.context && p.context.path.endsWith({name!r}) && p.context.isReady && k"
             " && k.status === 'idle');")
    wait_for(driver, lambda: driver.execute_script(ready), 90, f"{name} open with an idle kernel",
             lab["log"])
    time.sleep(1.0)  # JupyterLab writes the kernel's metadata just after the kernel is ready
    dirty, metadata = driver.execute_script("const m = window.jupyterapp.shell.currentWidget.context.model;"
                                            "return [m.dirty, m.toJSON().metadata];")
    saved = json.loads((lab["root"] / name).read_text())["metadata"]
    assert metadata["kernelspec"] == KERNEL
    if saved["language_info"].get("version") == metadata["language_info"].get("version"):
        assert not dirty, f"{name} is marked modified on open: metadata {saved} became {metadata}"
    else:  # written by another Python patch release (the committed language_info is the Python that wrote it): only the version may change
        assert {**metadata["language_info"], "version": None} == {**saved["language_info"], "version": None}
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
    progress = ("const p = window.jupyterapp.shell.currentWidget;"
                "const cells = p.content.widgets.filter(c => c.model.type === 'code');"
                "const errors = cells.flatMap(c => c.model.outputs.toJSON())"
                "  .filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue);"
                "const done = cells.filter(c => c.model.executionCount !== null"
                "  && !c.node.querySelector('.jp-InputPrompt').textContent.includes('*')).length;"
                "return {done: done, total: cells.length, errors: errors,"
                "  idle: p.sessionContext.session.kernel.status === 'idle'};")

    def finished():
        state = driver.execute_script(progress)
        if state["errors"]:
            pytest.fail(f"{name}: a cell failed in the browser: {state['errors']}")
        return state["done"] == state["total"] and state["idle"]

    wait_for(driver, finished, RUN_ALL_TIMEOUT, f"{name} to run all", lab["log"])


def page_errors(driver) -> list[str]:
    """Error text on the page: tracebacks in outputs, and the chat's error bubbles."""
    found = driver.execute_script(
        "return Array.from(document.querySelectorAll('.jp-OutputArea-output, .widget-html'))"
        ".map(e => e.innerText).filter(t => /Traceback|Error:|error:/.test(t));")
    return sorted(set(found))


def assert_no_console_errors(driver) -> None:
    severe = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, f"browser console errors: {severe}"


def wait_for(driver, condition, timeout: float, what: str, log: Path | None = None):
    """Poll ``condition`` until it returns something truthy; fail with ``what`` (and the server log's tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as e:  # noqa: BLE001 - the page is still changing (stale or absent elements)
            if isinstance(e, pytest.fail.Exception):
                raise
            value = None
        if value:
            return value
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; page errors: {page_errors(driver)}\n{tail}")


def click(driver, element) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()


def save_screenshot(element, name: str) -> Path:
    path = screenshot_dir() / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    element.parent.execute_script("arguments[0].scrollIntoView({block: 'start'});", element)
    element.screenshot(str(path))
    return path


def _find(driver, css: str):
    from selenium.webdriver.common.by import By

    found = [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
    return found[0] if found else None


def _visible_button(driver, label: str):
    from selenium.webdriver.common.by import By

    found = [b for b in driver.find_elements(By.XPATH, f"//button[normalize-space()='{label}']")
             if b.is_displayed() and b.is_enabled()]
    return found[0] if found else None


def _judged_text(panel) -> str:
    from selenium.webdriver.common.by import By

    return next(e.text for e in panel.find_elements(By.CSS_SELECTOR, ".widget-html") if " judged" in e.text)


def _reply_has_image(reply) -> bool:
    from selenium.webdriver.common.by import By

    bubble = reply.find_element(By.XPATH, "./ancestor::div[contains(@class,'widget-vbox')][1]")
    return any(img.size["width"] > 0 for img in bubble.find_elements(By.TAG_NAME, "img"))


def _write_png(path: Path, px: int) -> None:
    import numpy as np
    from PIL import Image

    image = np.zeros((px, px, 4), np.uint8)  # RGBA too: not the encoder's size, not its mode
    image[px // 4: px // 2, px // 4: px // 2] = (255, 0, 0, 255)
    Image.fromarray(image).save(path)


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(server, status_url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(status_url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"JupyterLab did not answer in {timeout:.0f}s:\n{log.read_text(errors='replace')[-3000:]}")


def _descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (kernels run in sessions of their own, so a process group would miss them)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop_pids(pids) -> None:
    """SIGTERM these processes (only these, by id), then SIGKILL those still there after 10 s."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            alive.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if _running(pid)]
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _running(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reaps our own children; others raise ChildProcessError
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
