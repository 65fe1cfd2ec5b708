"""Model definitions and their specs; ``get_spec(name)`` is the registry."""
from embodied_lib.models.hri import action_classifier_spec, command_pipeline_spec, param_extractor_spec
from embodied_lib.models.manipulation import manipulation_spec
from embodied_lib.models.navigation import DQNAgent, navigation_spec
from embodied_lib.models.spec import InputError, ModelSpec, TensorSpec, load_checkpoint, save_checkpoint

SPEC_FACTORIES = {"navigation": navigation_spec, "action_classifier": action_classifier_spec,
                  "param_extractor": param_extractor_spec, "command_pipeline": command_pipeline_spec,
                  "manipulation": manipulation_spec}


def get_spec(name: str, **kwargs) -> ModelSpec:
    if name not in SPEC_FACTORIES:
        raise KeyError(f"unknown model {name!r}; known models: {sorted(SPEC_FACTORIES)}")
    return SPEC_FACTORIES[name](**kwargs)


__all__ = ["DQNAgent", "InputError", "ModelSpec", "TensorSpec", "get_spec", "load_checkpoint",
           "save_checkpoint", "navigation_spec"]
