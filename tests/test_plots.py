"""Every figure the notebooks show goes through embodied_lib.plots.finish: labelled axes and a caption."""
import inspect
import json
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from embodied_lib import plots  # noqa: E402
from embodied_lib.navigation.env import GridWorldEnv  # noqa: E402
from embodied_lib.policy import Decision  # noqa: E402

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


class FirstAction:
    def reset(self):
        pass

    def act(self, obs):
        return Decision(action=int(np.argmax(obs[:4])) % 4)


def _latency_rows():
    return [{"runtime": "Python eager", "language": "Python", "p50_ms": 0.1, "p99_ms": 0.2, "mean_ms": 0.12},
            {"runtime": "C++ executorch", "language": "C++", "p50_ms": 0.01, "p99_ms": 0.03, "mean_ms": 0.012}]


def _report():
    return {"timeline": {"compute_ms": [1.0, 2.0, 1.5], "wall_ms": [5.0, 6.0, 5.5]}, "rate_hz": 20.0, "infer_budget": 0.6,
            "channels": {"navigation": {"interventions": {"nan_output": 3}}, "manipulation": {"interventions": {"late": 1}}}}


def _profiling_models():
    return {"navigation": {"memory": [{"runtime": "Python eager", "language": "Python", "file_mb": 0.3, "model_mb": 5.0, "peak_mb": 300.0},
                                      {"runtime": "C++ executorch", "language": "C++", "file_mb": 0.3, "model_mb": 1.0, "peak_mb": 20.0}],
                           "latency": [{"runtime": "Python eager", "p50_ms": 0.1}, {"runtime": "C++ executorch", "p50_ms": 0.01}],
                           "accuracy": {"int8_delta": {"executorch_int8": {"points": -0.2, "allowed_drop": 1.0}}}}}


def _untrained_manipulation_net():
    from embodied_lib.manipulation.model import manipulation_spec

    return manipulation_spec().build_model().eval()


def figures():
    """One call of every figure-making function in embodied_lib.plots, on small synthetic inputs."""
    nav_history = {"episode_return": list(np.linspace(-1, 1, 50)), "episode_step": list(range(50)), "step": [1, 2, 3],
                   "loss": [1.0, 0.5, 0.2], "validation_step": [10, 20], "validation_success": [0.2, 0.6]}
    hri_history = {"loss": [1.0, 0.8, 0.5], "action_loss": [0.6, 0.5, 0.3], "param_loss": [0.4, 0.3, 0.2], "val_accuracy": [0.5, 0.9]}
    obs, _ = GridWorldEnv().reset(seed=3)
    frame = np.zeros((40, 40, 3), dtype=np.uint8)
    return {
        "show_maps": lambda: plots.show_maps([1, 2]),
        "show_observation": lambda: plots.show_observation(obs),
        "plot_learning_curves": lambda: plots.plot_learning_curves({"history": nav_history, "random_policy": {"success_rate": 0.1}}),
        "plot_rollout": lambda: plots.plot_rollout(FirstAction(), 5),
        "plot_hri_training": lambda: plots.plot_hri_training({"history": hri_history, "route": "fine-tuned"}),
        "plot_confusion": lambda: plots.plot_confusion([[3, 1], [0, 4]], ["go_to", "pick"]),
        "plot_confidence": lambda: plots.plot_confidence([0.9, 0.95], [0.2, 0.4], 0.5),
        "plot_parameter_errors": lambda: plots.plot_parameter_errors({reader: {"row": [(1, 1), (2, 3)], "col": [(4, 4)], "angle_deg": [(90, 85)]}
                                                              for reader in ("slots", "param_extractor")}
                                                             | {"unread": {"row": 0, "col": 0, "angle_deg": 1}}),
        "show_frames": lambda: plots.show_frames([frame] * 3, ["a", "b", "c"], columns=2),
        "plot_keypoints": lambda: plots.plot_keypoints(_untrained_manipulation_net(), [np.zeros((400, 400, 3), np.uint8)] * 2),
        "plot_bc_curves": lambda: plots.plot_bc_curves({"history": {"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}}),
        "plot_tick_timeline": lambda: plots.plot_tick_timeline(_report()),
        "plot_rate_sweep": lambda: plots.plot_rate_sweep({"rates": [{"rate_hz": 50, "ticks": 100, "deadline_misses": 0, "compute_ms": {"p99": 2.0}},
                                                                    {"rate_hz": 500, "ticks": 100, "deadline_misses": 7, "compute_ms": {"p99": 3.0}}]}),
        "plot_interventions": lambda: plots.plot_interventions(_report()),
        "plot_latency": lambda: plots.plot_latency({"navigation": _latency_rows(), "manipulation": _latency_rows()}),
        "plot_latency_vs_size": lambda: plots.plot_latency_vs_size(_profiling_models()),
        "plot_int8_accuracy": lambda: plots.plot_int8_accuracy(_profiling_models()),
        "plot_memory": lambda: plots.plot_memory(_profiling_models()),
        "plot_pruning": lambda: plots.plot_pruning(_pruning_results()),
    }


def _pruning_results():
    def row(kind, speed, delta):
        return {"kind": kind, "speedup_cpp_x": speed, "delta_points": delta, "usable": delta >= -2}
    variants = {"unpruned": row("none", 1.0, 0.0), "magnitude_90": row("magnitude", 1.0, -80.0),
                "structured_50": row("structured", 1.7, -0.8)}
    return {"navigation": {"metric": "success_rate", "allowed_drop_points": 2.0, "variants": variants}}


def test_every_figure_function_is_covered():
    made_here = {name for name, f in inspect.getmembers(plots, inspect.isfunction)
                 if f.__module__ == plots.__name__ and (name.startswith(("plot_", "show_")))}
    assert made_here == set(figures())


@pytest.mark.parametrize("name", sorted(figures()))
def test_figure_has_labelled_axes_and_a_caption(name):
    fig = figures()[name]()
    try:
        assert fig.embodied_caption.strip()
        assert fig.embodied_caption in [t.get_text() for t in fig.texts]
        axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        assert axes
        for ax in axes:
            assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), (name, ax.get_title())
    finally:
        plt.close(fig)


def test_finish_refuses_an_unlabelled_axis_and_a_missing_caption():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("time (s)")
    with pytest.raises(plots.UnlabelledFigure, match="y-axis"):
        plots.finish(fig, "a caption")
    ax.set_ylabel("metres")
    with pytest.raises(plots.UnlabelledFigure, match="caption"):
        plots.finish(fig, "  ")
    assert plots.finish(fig, "ok").embodied_caption == "ok"
    plt.close(fig)


def test_notebooks_make_figures_only_through_the_library():
    """A figure a notebook made itself would skip finish(); so notebooks may only show() what plots made."""
    direct = re.compile(r"\bplt\.(subplots|figure|plot|imshow|scatter|bar|barh|hist|subplot)\(|\.add_subplot\(")
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert not direct.search("".join(cell["source"])), (path.name, "".join(cell["source"])[:200])


def test_latency_matrix_and_conclusion_read_the_rows():
    from embodied_lib.runtime.latency import latency_conclusion, latency_matrix

    by_model = {"navigation": _latency_rows(), "manipulation": _latency_rows()[:1]}
    table = latency_matrix(by_model)
    assert [r["runtime (p50 / p99 ms)"] for r in table] == ["Python eager", "C++ executorch"]
    assert table[1]["navigation"] == "0.0100 / 0.0300" and table[1]["manipulation"] == "-"
    lines = latency_conclusion(by_model).splitlines()
    assert lines[0] == "navigation: fastest is C++ executorch at 0.0100 ms p50, 10.0x faster than Python eager (0.1000 ms)"


def test_markdown_table_escapes_a_bar_inside_a_cell():
    table = plots.markdown_table([{"model": "navigation", "max |diff|": "a|b", "note": "two\nlines"}])
    header, rule, row = table.split("\n")
    assert header == r"| model | max \|diff\| | note |" and rule == "|---|---|---|"
    assert row == r"| navigation | a\|b | two<br>lines |"
    unescaped = [re.split(r"(?<!\\)\|", line) for line in (header, row)]
    assert len(unescaped[0]) == len(unescaped[1]) == 5   # three cells between the outer bars, in both rows


def test_rollout_viewer_shows_images_a_saved_notebook_keeps(monkeypatch, capsys):
    """A PNG frame strip and an animated GIF: plain image outputs, no widget that needs a kernel."""
    import io

    import IPython.display
    from PIL import Image

    from embodied_lib import widgets

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    frames = [np.full((400, 400, 3), 10 * i, np.uint8) for i in range(25)]
    widgets.rollout_viewer(frames, [f"step {i}" for i in range(25)])
    assert [type(s).__name__ for s in shown] == ["Image", "Image"]
    strip, animation = (Image.open(io.BytesIO(s.data)) for s in shown)
    assert strip.format == "PNG" and strip.width > 7 * 200 and strip.height > 200
    assert animation.format == "GIF" and animation.n_frames == 25
    assert "last: step 24" in capsys.readouterr().out
