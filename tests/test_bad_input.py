"""Wrong shapes, dtypes, NaN/Inf and broken model files give clear errors, never crashes."""
import shutil

import numpy as np
import pytest

from embodied_lib.export import FORMATS
from embodied_lib.export.artifacts import ArtifactError, ModelBytes
from embodied_lib.export.golden import read_golden
from embodied_lib.spec import InputError
from embodied_lib.registry import load_runtime


@pytest.fixture(scope="module")
def onnx_runtime(navigation_exports):
    return load_runtime(navigation_exports, "onnx")


@pytest.mark.parametrize("shape", [(1, 255), (1, 257), (256,), (1, 4, 8, 8)])
def test_wrong_shape_names_the_expected_shape(onnx_runtime, shape):
    with pytest.raises(InputError, match=r"expected state: float32\[batch, 256\]"):
        onnx_runtime(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.uint8])
def test_wrong_dtype(onnx_runtime, dtype):
    with pytest.raises(InputError, match="dtype float32"):
        onnx_runtime(np.zeros((1, 256), dtype=dtype))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf(onnx_runtime, bad):
    state = np.zeros((2, 256), dtype=np.float32)
    state[1, 17] = bad
    with pytest.raises(InputError, match="NaN or Inf"):
        onnx_runtime(state)


def test_wrong_input_count_and_empty_batch(onnx_runtime):
    with pytest.raises(InputError, match="takes 1 input"):
        onnx_runtime(np.zeros((1, 256), np.float32), np.zeros((1, 256), np.float32))
    with pytest.raises(InputError, match="batch size"):
        onnx_runtime(np.zeros((0, 256), np.float32))
    with pytest.raises(InputError, match="numpy array"):
        onnx_runtime([[0.0] * 256])


@pytest.fixture
def broken_exports(tmp_path, navigation_exports):
    copy = tmp_path / "navigation"
    shutil.copytree(navigation_exports, copy)
    return copy


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_missing_file_is_named(broken_exports, fmt):
    path = broken_exports / f"navigation{FORMATS[fmt].suffix}"
    path.unlink()
    with pytest.raises(ArtifactError, match=f"{path.name} not found"):
        load_runtime(broken_exports, fmt, trusted=True)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_truncated_file_is_caught_by_the_manifest(broken_exports, fmt):
    path = broken_exports / f"navigation{FORMATS[fmt].suffix}"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArtifactError, match="truncated"):
        load_runtime(broken_exports, fmt, trusted=True)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_truncated_file_fails_cleanly_in_its_own_loader(broken_exports, navigation_model, fmt):
    """Even without the manifest's check, each runtime's loader raises, naming the file."""
    spec, _ = navigation_model
    path = broken_exports / f"navigation{FORMATS[fmt].suffix}"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArtifactError, match=str(path.name)):
        FORMATS[fmt].load(ModelBytes(path, path.read_bytes()), spec)


def test_missing_manifest(tmp_path):
    with pytest.raises(ArtifactError, match="manifest.json not found"):
        load_runtime(tmp_path, "onnx")


def test_unknown_format(navigation_exports):
    with pytest.raises(ValueError, match="unknown format"):
        load_runtime(navigation_exports, "tflite")


def test_truncated_golden_file(tmp_path, navigation_exports):
    data = (navigation_exports / "golden.bin").read_bytes()
    (tmp_path / "golden.bin").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated"):
        read_golden(tmp_path / "golden.bin")
