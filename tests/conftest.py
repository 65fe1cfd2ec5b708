import os

import pytest
import torch

from embodied_lib.export import export_all
from embodied_lib.models import navigation_spec


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
    export_all(spec, model, out, log=lambda *_: None)
    return out
