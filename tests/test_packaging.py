"""Pins live in pyproject.toml; environment.yml must list the same ones."""
import re
import tomllib

from embodied_lib.config import REPO_ROOT

REQUIRED = {"torch", "torchvision", "executorch", "onnx", "onnxscript", "onnxruntime", "transformers",
            "jupyterlab", "papermill", "ipywidgets", "gymnasium", "safetensors", "matplotlib", "tqdm", "pytest"}


def pyproject_pins():
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(d.split("==") for d in deps)


def environment_pins():
    pins = {}
    for line in (REPO_ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"\s*-\s*([A-Za-z0-9_.\-]+)==(\S+)\s*$", line)
        if m:
            pins[m.group(1)] = m.group(2)
    return pins


def test_every_dependency_is_pinned_exactly():
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert all("==" in d for d in deps), [d for d in deps if "==" not in d]
    assert REQUIRED <= set(pyproject_pins())


def test_environment_yml_matches_pyproject():
    assert environment_pins() == pyproject_pins()


def test_issue_pins_for_the_torch_stack():
    pins = pyproject_pins()
    assert (pins["torch"], pins["torchvision"], pins["executorch"]) == ("2.13.0", "0.28.0", "1.5.1")


def test_notebooks_are_stored_without_outputs():
    import json
    notebooks = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in code), path.name
        # nbformat 4.5 gives every cell an id; one without makes papermill print a MissingIDFieldWarning
        assert all(c.get("id") for c in nb["cells"]), f"{path.name}: a cell has no id (nbformat.validator.normalize)"
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code), path.name
