"""The browser's rendering check on its own (no executed workbook needed, so it runs on the other pytest worker,
beside the tests that do not wait for the workbook): a missing browser is a clear error, and a planted notebook's
raw table and widget placeholder are both reported."""
import shutil

import pytest

from embodied_lib import browser


def test_a_missing_browser_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(browser.BrowserUnavailable, match="apt-get install chromium chromium-driver"):
        browser.find_browser()


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
