import json
import os
import time

import pytest
import torch

from embodied_lib.export import export_all
from embodied_lib.navigation.model import navigation_spec


# make test runs two pytest-xdist workers: the tests that read the executed quick workbook on one (which spends most
# of the session running it), every other test on the other, so each session fixture (the workbook, the exports,
# the builds) is made once. Grouped by file, because the controller that schedules sees only test ids (and
# xdist 3.8's --dist loadgroup marks do not reach them under pytest 9: it sets a node attribute pytest 9 no longer reads).
WORKBOOK_TEST_FILES = {"test_notebooks.py", "test_browser.py", "test_hri_trained.py"}


def pytest_configure(config):
    """Each of the n workers gets its share of the cores: torch's OpenMP threads spin while they wait, and two
    workers with two threads each on two cores made the workbook's training notebooks 4.5x slower (measured: 02 and
    03 took 438 and 470 s instead of 91 and 103). Set before the notebooks' kernels and the CLIs' subprocesses
    start; they inherit it."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads
        torch.set_num_threads(int(threads))


_SESSION_STARTED = time.time()
_TESTS_RUN: list[str] = []


def pytest_runtest_logstart(nodeid, location):
    _TESTS_RUN.append(nodeid)


def pytest_sessionfinish(session):
    """Each worker's wall time, kept after the session (runs/test_worker_seconds/<worker>.json): whether the two
    workers' loads are balanced, i.e. whether a core sits idle while the workbook's worker finishes."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        from embodied_lib.config import RUNS_DIR

        folder = RUNS_DIR / "test_worker_seconds"
        folder.mkdir(parents=True, exist_ok=True)
        files = sorted({n.split("::")[0].rsplit("/", 1)[-1] for n in _TESTS_RUN})
        (folder / f"{worker}.json").write_text(json.dumps({"seconds": round(time.time() - _SESSION_STARTED, 1),
                                                           "tests": len(_TESTS_RUN), "files": files}) + "\n")


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class WorkbookAndRest(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "workbook" if nodeid.split("::")[0].rsplit("/", 1)[-1] in WORKBOOK_TEST_FILES else "rest"

    return WorkbookAndRest(config, log)


def pytest_collection_modifyitems(items):
    """A test that reads the workbook outside those files would run the whole workbook a second time."""
    strays = [i.nodeid for i in items if "executed_workbook" in i.fixturenames and i.path.name not in WORKBOOK_TEST_FILES]
    if strays:
        raise pytest.UsageError(f"tests using executed_workbook outside WORKBOOK_TEST_FILES (tests/conftest.py): {strays}")


@pytest.fixture(scope="session")
def navigation_model():
    """A seeded, untrained DQNAgent: parity is about the export path, not the weights."""
    torch.manual_seed(1234)
    spec = navigation_spec()
    return spec, spec.build_model()


@pytest.fixture(scope="session")
def navigation_exports(tmp_path_factory, navigation_model):
    spec, model = navigation_model
    out = tmp_path_factory.mktemp("exports") / "navigation"
    # every format, and the program with no delegate that only the profiling bench writes: every runner gets a file
    export_all(spec, model, out, formats=(*spec.formats, "executorch_undelegated"), log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def failed_int8_exports(tmp_path_factory, navigation_model):
    """A navigation export whose INT8 files fail their parity rule, as a real one may (issue 43): the same model
    judged by an INT8 tolerance no INT8 file can meet. The float files pass."""
    import dataclasses

    spec, model = navigation_model
    out = tmp_path_factory.mktemp("failed_int8") / "navigation"
    export_all(dataclasses.replace(spec, int8_tolerance=1e-9), model, out,
               formats=("executorch", "onnx", "executorch_int8", "onnx_int8"), log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def manipulation_exports(tmp_path_factory):
    """A seeded, untrained ManipulationNet in every format."""
    from embodied_lib.manipulation.model import manipulation_spec

    torch.manual_seed(3)
    spec = manipulation_spec()
    model = spec.build_model()
    out = tmp_path_factory.mktemp("manipulation_exports") / "manipulation"
    export_all(spec, model, out, log=lambda *_: None)
    return out, spec, model


TINY_ENCODER = {"vocab_size": 30522, "dim": 32, "n_layers": 1, "n_heads": 2, "hidden_dim": 64,
                "max_position_embeddings": 128, "activation": "gelu"}


@pytest.fixture(scope="session")
def hri_exports(tmp_path_factory):
    """Seeded, untrained HRI models exported like notebook 04 does: the two heads (every format)
    and a text pipeline with a tiny DistilBERT (the export path is what is under test)."""
    from embodied_lib.hri.model import (action_classifier_spec, build_command_pipeline, command_pipeline_spec,
                                        param_extractor_spec)

    torch.manual_seed(99)
    root = tmp_path_factory.mktemp("hri_exports")
    models = {}
    for spec in (action_classifier_spec(0.5), param_extractor_spec(0.5)):
        models[spec.name] = (spec, spec.build_model())
    spec = command_pipeline_spec(TINY_ENCODER, confidence_threshold=0.5)
    models[spec.name] = (spec, build_command_pipeline(TINY_ENCODER, embed_dim=TINY_ENCODER["dim"]).eval())
    for name, (spec, model) in models.items():
        export_all(spec, model, root / name, log=lambda *_: None)
    return root, models


WORKBOOK_ENV = ("EMBODIED_RUNS", "EMBODIED_EXPORTS", "EMBODIED_DATA", "EMBODIED_PROFILE")


@pytest.fixture(scope="session")
def executed_workbook(tmp_path_factory):
    """Every notebook run once, in order, with the quick profile, as `make run` does, into temporary runs/,
    exports/ and data/ folders; shared by the notebook checks and the browser test. Returns the root folder
    (``runs``, ``exports``, ``data``, ``executed`` inside) and the environment that points the library there."""
    import json
    import os
    import time

    from embodied_lib.config import RUNS_DIR
    from embodied_lib.workbook import notebooks, run_notebook

    root = tmp_path_factory.mktemp("workbook")
    env = {"EMBODIED_RUNS": str(root / "runs"), "EMBODIED_EXPORTS": str(root / "exports"),
           "EMBODIED_DATA": str(root / "data"), "EMBODIED_PROFILE": "quick"}
    saved = {k: os.environ.get(k) for k in WORKBOOK_ENV}
    os.environ.update(env)
    try:
        seconds = {}
        for path in notebooks():
            started = time.perf_counter()
            run_notebook(path, "quick", "embodied-workbook", root / "executed")
            seconds[path.name] = round(time.perf_counter() - started, 1)
        # where the quick workbook's time goes, kept after the session (make test's own timing record)
        RUNS_DIR.mkdir(parents=True, exist_ok=True)
        (RUNS_DIR / "test_notebook_seconds.json").write_text(json.dumps(seconds, indent=2))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return root, env


