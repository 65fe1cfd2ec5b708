"""The workbook in a real browser: JupyterLab in headless Chromium (Debian's), driven by Selenium.

Screenshots of every executed notebook land in runs/screenshots/; notebook 03 is run in the browser and two
commands are typed into its command box, one a robot can carry out and one it must refuse."""
import shutil

import pytest

from embodied_lib import browser
from embodied_lib.config import REPO_ROOT, RUNS_DIR
from embodied_lib.workbook import notebooks

SCREENSHOTS = RUNS_DIR / "screenshots"


def test_a_missing_browser_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(browser.BrowserUnavailable, match="apt-get install chromium chromium-driver"):
        browser.find_browser()


@pytest.mark.slow
def test_screenshots_of_every_executed_notebook(executed_workbook):
    root, env = executed_workbook
    shots = browser.screenshot_notebooks(root / "executed", SCREENSHOTS, env)
    assert sorted(shots) == [p.stem for p in notebooks()]
    for name, paths in shots.items():
        assert paths and all(p.stat().st_size > 20_000 for p in paths), name   # a rendered page, not a blank one


@pytest.mark.slow
def test_notebook_03_runs_in_the_browser_and_its_command_box_answers(executed_workbook, tmp_path):
    _, env = executed_workbook
    live = tmp_path / "03_hri_distilbert.ipynb"
    shutil.copy(REPO_ROOT / "notebooks" / "03_hri_distilbert.ipynb", live)
    in_domain, out_of_domain = "please go to row 3 column 4", "tell me a joke about the weather"
    rows = browser.run_and_type_commands(live, [in_domain, out_of_domain], SCREENSHOTS, env)
    assert [r["text"] for r in rows] == [in_domain, out_of_domain]
    assert rows[0]["decision"] == "ACCEPT" and rows[0]["action"] == "go_to", rows[0]
    assert rows[1]["decision"] == "REFUSE" and rows[1]["reason"], rows[1]
    assert len(list(SCREENSHOTS.glob("03_hri_distilbert_live_*.png"))) >= 2
