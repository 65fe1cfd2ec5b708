"""The workbook's models by name: their specs, checkpoints, exported runtimes and policies.

The one module that knows every model package (it sits above them, nothing below imports it):

    spec = get_spec("navigation")
    spec, model = load_checkpoint("runs/navigation")            # config.json + model.safetensors
    runtime = load_runtime("exports/manipulation", "executorch")  # spec rebuilt from the manifest
    policy = make_policy(runtime)                                 # reset() / act(observation) -> Decision
"""
from __future__ import annotations

from pathlib import Path

from embodied_lib.export.manifest import MANIFEST_NAME, batch1_format, parse_manifest, read_manifest_bytes
from embodied_lib.hri.encoder import load_tokenizer
from embodied_lib.hri.interpreter import CommandInterpreter
from embodied_lib.hri.model import action_classifier_spec, command_pipeline_spec, param_extractor_spec
from embodied_lib.manipulation.model import manipulation_spec
from embodied_lib.manipulation.policy import ManipulationPolicy
from embodied_lib.navigation.model import navigation_spec
from embodied_lib.navigation.policy import NavigationPolicy
from embodied_lib.runtime.runtimes import Runtime, load_artifact
from embodied_lib.spec import ModelSpec, read_checkpoint

SPEC_FACTORIES = {"navigation": navigation_spec, "manipulation": manipulation_spec,
                  "action_classifier": action_classifier_spec, "param_extractor": param_extractor_spec,
                  "command_pipeline": command_pipeline_spec}


def get_spec(name: str, **kwargs) -> ModelSpec:
    if name not in SPEC_FACTORIES:
        raise KeyError(f"unknown model {name!r}; known models: {sorted(SPEC_FACTORIES)}")
    return SPEC_FACTORIES[name](**kwargs)


def load_checkpoint(directory):
    """``(spec, model)`` rebuilt from ``config.json`` with weights from ``model.safetensors`` (no pickle)."""
    return read_checkpoint(directory, lambda config: get_spec(config["model"], **config["spec_args"]))


def load_runtime(export_dir, fmt: str, trusted: bool = False, public_key=None, batch1: bool = False) -> Runtime:
    """Open ``fmt`` from ``export_dir``; the spec is rebuilt from the folder's manifest. ``trusted`` and
    ``public_key``: for code-carrying formats (runtime.runtimes.load_artifact). ``batch1``: for a loop that runs
    batch 1 (the robot's): the format's batch-1 program where the export has one (manifest.batch1_format)."""
    data = read_manifest_bytes(export_dir)   # read once, for the spec and for the load
    manifest = parse_manifest(data, Path(export_dir) / MANIFEST_NAME)
    if batch1:
        fmt = batch1_format(manifest, fmt)
    return load_artifact(export_dir, fmt, get_spec(manifest["model"], **manifest["spec_args"]), trusted, public_key,
                         manifest_bytes=data)


def make_policy(runtime: Runtime, tokenizer=None):
    """The policy of the model behind ``runtime`` (eager or any exported format)."""
    name = runtime.spec.name
    if name == "navigation":
        return NavigationPolicy(runtime)
    if name == "manipulation":
        return ManipulationPolicy(runtime)
    if name == "command_pipeline":  # the exported tokenizer.json is this same tokenizer, saved
        return CommandInterpreter(runtime, tokenizer or load_tokenizer(), runtime.spec.metadata["confidence_threshold"])
    raise ValueError(f"{name} has no policy of its own (the HRI heads act inside command_pipeline)")
