import torch

from embodied_lib.navigation.model import DQNAgent, navigation_spec


def test_parameter_names_and_shapes_are_the_native_contract():
    model = DQNAgent(256)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {
        "fc1.weight": (256, 256), "fc1.bias": (256,),
        "fc2.weight": (256, 256), "fc2.bias": (256,),
        "fc3.weight": (256, 256), "fc3.bias": (256,),
        "fc4.weight": (4, 256), "fc4.bias": (4,),
    }


def test_output_shape_and_dropout_only_in_training():
    torch.manual_seed(0)
    spec = navigation_spec()
    model = spec.build_model()
    (x,) = spec.example_inputs(batch=5)
    assert x.shape == (5, 256)
    model.eval()
    assert model(x).shape == (5, 4)
    assert torch.equal(model(x), model(x))  # eval: deterministic, dropout off
    model.train()
    assert not torch.equal(model(x), model(x))  # train: dropout 0.2 active


def test_spec_describes_the_contract():
    spec = navigation_spec(grid_size=8)
    assert [s.to_json() for s in spec.inputs] == [{"name": "state", "shape": ["batch", 256], "dtype": "float32",
                                                   "valid": [0.0, 1.0]}]
    assert [s.to_json() for s in spec.outputs] == [{"name": "q_values", "shape": ["batch", 4], "dtype": "float32",
                                                    "judged": {"kind": "discrete", "labels": list(spec.metadata["actions"])}}]
    assert spec.metadata["actions"] == ["up", "down", "left", "right"]
    assert spec.metadata["channels"] == ["agent", "goal", "obstacle", "visited"]
