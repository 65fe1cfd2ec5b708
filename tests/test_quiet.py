"""Known library noise is filtered narrowly: the named lines go, everything else still reaches the user."""
import logging
import os
import warnings

from embodied_lib import quiet


def test_native_stderr_keeps_every_line_but_the_known_noise(capfd):
    with quiet.native_stderr_filtered():
        os.write(2, b"[cpuinfo_utils.cpp:71] Reading file /sys/devices/soc0/image_version\n")
        os.write(2, b"error: the model file is truncated\n")
        os.write(2, b"I tokenizers:regex.cpp:40] Registering override fallback regex\n")
    err = capfd.readouterr().err
    assert err == "error: the model file is truncated\n"


def test_an_exception_inside_still_restores_stderr(capfd):
    try:
        with quiet.native_stderr_filtered():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_python_filters_are_narrow(caplog):
    quiet.install()
    quiet.install()   # idempotent: one filter, not two
    pytree = logging.getLogger("torch.utils._pytree")
    assert sum(isinstance(f, quiet._MessageFilter) for f in pytree.filters) == 1
    with caplog.at_level(logging.WARNING, logger="torch.utils._pytree"):
        pytree.warning("Calling register_constant() on Enum subclasses is deprecated and will be an error")
        pytree.warning("something else is wrong")
    assert [r.getMessage() for r in caplog.records] == ["something else is wrong"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet.install()
        warnings.warn("isinstance(treespec, LeafSpec) is deprecated", FutureWarning)
        warnings.warn("a different future change", FutureWarning)
    assert [str(w.message) for w in caught] == ["a different future change"]


def test_python_side_stderr_is_filtered_too(capsys):
    """ExecuTorch's bindings write their log to sys.stderr (a Jupyter kernel's is not fd 2), piece by piece."""
    import sys

    with quiet.native_stderr_filtered():
        for piece in ("[", "cpuinfo_utils.cpp", ":", "87", "] ", "Failed to open midr file x", "\n"):
            sys.stderr.write(piece)
        sys.stderr.write("a real problem\n")
    assert capsys.readouterr().err == "a real problem\n"
