"""The workbook in a real browser: JupyterLab in headless Chromium (Debian's), driven by Selenium.

Screenshots of every executed notebook land in runs/screenshots/; notebook 03 is run in the browser and two
commands are typed into its command box, one a robot can carry out and one it must refuse."""
from pathlib import Path

import pytest

from embodied_lib import browser
from embodied_lib.config import REPO_ROOT, RUNS_DIR
from embodied_lib.workbook import notebooks

SCREENSHOTS = RUNS_DIR / "screenshots"


@pytest.mark.slow
def test_screenshots_of_every_executed_notebook(executed_workbook):
    root, env = executed_workbook
    shots = browser.screenshot_notebooks(root / "executed", SCREENSHOTS, env)
    assert sorted(shots) == [p.stem for p in notebooks()]
    for name, page in shots.items():
        assert page.screenshots and all(p.stat().st_size > 20_000 for p in page.screenshots), name   # not blank
    assert {name: page.problems for name, page in shots.items() if page.problems} == {}


@pytest.mark.slow
def test_notebook_03_runs_in_the_browser_and_its_command_box_answers(executed_workbook, tmp_path):
    """The notebook as a reader reopens it after a run: REUSE loads the model the workbook run trained (training
    itself is covered there), so this checks what only a browser shows, every cell and the live command box."""
    import papermill

    _, env = executed_workbook
    live = tmp_path / "03_hri_distilbert.ipynb"
    papermill.execute_notebook(str(REPO_ROOT / "notebooks" / "03_hri_distilbert.ipynb"), str(live),
                               parameters={"PROFILE": "quick", "REUSE": True}, prepare_only=True, progress_bar=False)
    trained = Path(env["EMBODIED_RUNS"]) / "hri" / "metrics.json"
    written = trained.stat().st_mtime_ns
    in_domain, out_of_domain = "please go to row 3 column 4", "tell me a joke about the weather"
    rows = browser.run_and_type_commands(live, [in_domain, out_of_domain], SCREENSHOTS, env)
    assert [r["text"] for r in rows] == [in_domain, out_of_domain]
    assert rows[0]["decision"] == "ACCEPT" and rows[0]["action"] == "go_to", rows[0]
    assert rows[1]["decision"] == "REFUSE" and rows[1]["reason"], rows[1]
    assert len(list(SCREENSHOTS.glob("03_hri_distilbert_live_*.png"))) >= 2
    assert trained.stat().st_mtime_ns == written   # the browser's kernel loaded the model, it did not train again
