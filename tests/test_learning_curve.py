"""The learning-curve tool (issue 26's success against demonstrations), run for real on a tiny budget."""
import json
import subprocess
import sys

from embodied_lib.config import REPO_ROOT


def test_learning_curve_tool_trains_each_point_and_writes_json_and_plot(tmp_path):
    out = tmp_path / "curve.json"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "manipulation_learning_curve.py"),
                           "--episodes", "25", "50", "--epochs", "1", "--eval-episodes", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [p["demonstrations"] for p in result["points"]] == [25, 50]
    first, second = result["points"]
    assert second["train_frames"] > first["train_frames"] > 0   # the second point reads twice the shards
    assert all(p["scenes"] == 2 and 0.0 <= p["success_rate"] <= 1.0 for p in result["points"])
    assert result["epochs"] == 1 and result["dagger_rounds"] == 0 and result["warm_start"] is None
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_learning_curve_tool_refuses_counts_that_are_not_whole_shards(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "manipulation_learning_curve.py"),
                           "--episodes", "30", "--out", str(tmp_path / "c.json")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "multiples of 25" in proc.stderr, proc.stderr[-500:]
