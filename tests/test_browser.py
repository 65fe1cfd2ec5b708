"""The workbook in a real browser: JupyterLab in headless Chromium (Debian's), driven by Selenium.

Screenshots of every executed notebook land in runs/screenshots/; notebook 03 is run in the browser and two
commands are typed into its command box, one a robot can carry out and one it must refuse."""
import shutil
from pathlib import Path

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
    for name, page in shots.items():
        assert page.screenshots and all(p.stat().st_size > 20_000 for p in page.screenshots), name   # not blank
    assert {name: page.problems for name, page in shots.items() if page.problems} == {}


def _planted_notebook(path):
    """A notebook whose outputs a reader would find broken: a table whose header has a bare "|" (it stays raw
    text), and a widget whose state was not saved (JupyterLab shows its placeholder)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("show()", execution_count=1)
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={
            "text/markdown": "| model | max |diff| | passed |\n|---|---|---|\n| navigation | 1e-06 | True |",
            "text/plain": "<IPython.core.display.Markdown object>"}),
        nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "0123456789abcdef", "version_major": 2,
                                                         "version_minor": 0},
            "text/plain": "VBox(children=(HTML(value='<b>scene 0</b>'), Image(value=b'...')))"}),
        nbformat.v4.new_output("display_data", data={"text/markdown": "| fine | table |\n|---|---|\n| a \\| b | 2 |",
                                                     "text/plain": "<IPython.core.display.Markdown object>"}),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# planted"), cell]
    nb.metadata["kernelspec"] = {"name": "embodied-workbook", "display_name": "Embodied workbook (.venv)",
                                 "language": "python"}
    nbformat.write(nb, str(path))


@pytest.mark.slow
def test_the_rendering_check_catches_a_raw_table_and_a_widget_placeholder(tmp_path):
    _planted_notebook(tmp_path / "99_planted.ipynb")
    problems = browser.screenshot_notebooks(tmp_path, tmp_path / "shots")["99_planted"].problems
    assert len(problems) == 2, problems
    assert problems[0].startswith("raw Markdown table text: | model | max |diff|"), problems
    assert problems[1].startswith("widget placeholder:"), problems   # the escaped "a \| b" table is not flagged


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
