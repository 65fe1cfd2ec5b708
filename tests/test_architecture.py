"""The shape of the library: no import cycles, one description per model that the twins rebuild,
outputs judged as their spec says, one percentile, one home for seeds."""
import ast
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import embodied_lib
from embodied_lib.architecture import run_architecture
from embodied_lib.hri.model import action_classifier_spec, param_extractor_spec
from embodied_lib.manipulation.model import manipulation_spec
from embodied_lib.navigation.model import navigation_spec
from embodied_lib.runtime.latency import percentile
from embodied_lib.runtime.runtimes import compare_outputs

PACKAGE = Path(embodied_lib.__file__).parent


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> modules it imports, from the source: every import counts (inside functions too), a
    package's ``__init__`` imports what it re-exports, and importing ``a.b.c`` runs ``a.b``'s ``__init__``
    unless the importer lives inside ``a.b`` (Python is already running that ``__init__`` then)."""
    modules = {}
    for f in root.rglob("*.py"):
        name = ".".join(f.relative_to(root.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = f
    pkg = root.name

    def resolve(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {m: set() for m in modules}
    for m, f in modules.items():
        is_package = f.name == "__init__.py"
        here = m if is_package else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                if t.split(".")[0] != pkg:
                    continue
                target = resolve(t)
                if target and target != m:
                    graph[m].add(target)
                    parts = target.split(".")
                    for i in range(2, len(parts)):  # parent packages' __init__ run first
                        parent = ".".join(parts[:i])
                        if parent in modules and not (m == parent or m.startswith(parent + ".")):
                            graph[m].add(parent)
    return graph


def cycles(graph):
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    graph = import_graph(PACKAGE)
    assert len(graph) > 30
    assert cycles(graph) == []


def test_the_cycle_check_can_fail(tmp_path):
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from toy.sub.a import A\n")
    (pkg / "sub" / "a.py").write_text("A = 1\n")
    (pkg / "b.py").write_text("def late():\n    from toy.sub.a import A\n")
    assert cycles(import_graph(pkg)) == []
    (pkg / "sub" / "a.py").write_text("A = 1\ndef late():\n    import toy.b\n")   # a function-level import
    assert cycles(import_graph(pkg)) == [["toy.b", "toy.sub", "toy.sub.a"]]  # b runs sub/__init__ too


@pytest.mark.parametrize("make_spec", [navigation_spec, manipulation_spec, action_classifier_spec, param_extractor_spec],
                         ids=["navigation", "manipulation", "action_classifier", "param_extractor"])
def test_the_twins_description_computes_the_models_forward(make_spec):
    """What the C++ and Rust twins rebuild (the manifest's layer graph) is the model's own forward."""
    torch.manual_seed(0)
    spec = make_spec()
    model = spec.build_model()
    for m in model.modules():  # non-trivial batch-norm statistics, so the graph must use them right
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    architecture = spec.architecture(model)
    assert architecture["inputs"] == [s.name for s in spec.inputs]
    inputs = spec.example_inputs(batch=3, seed=1)
    with torch.no_grad():
        expected = model(*inputs)
        got = run_architecture(architecture, model.state_dict(), *inputs)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    used = {n["params"] for n in architecture["nodes"] if "params" in n}
    assert {k.rsplit(".", 1)[0] for k, _ in model.named_parameters()} <= used  # every weight is read


def test_an_unknown_layer_is_refused_by_name():
    spec = navigation_spec()
    model = spec.build_model()
    architecture = spec.architecture(model)
    architecture["nodes"].insert(1, {"op": "lstm"})
    with pytest.raises(ValueError, match="unsupported layer 'lstm'"):
        run_architecture(architecture, model.state_dict(), *spec.example_inputs(batch=2))


def test_a_continuous_output_is_not_judged_by_argmax():
    spec = manipulation_spec()
    expected = (np.array([[0.50, 0.50000002, -0.2, 0.30]], np.float32),)
    swapped = (np.array([[0.50000002, 0.50, -0.2, 0.30]], np.float32),)   # argmax flips, values agree to 2e-8
    result = compare_outputs(spec, expected, swapped)
    assert result["passed"] and result["decision_agreement"] == {"action.gripper_closed": 1.0}
    # the gripper decision is what counts: values within a loose tolerance (as for a lossy format), the
    # decision compared strictly, and opposite
    opened = (np.array([[0.50, 0.50000002, -0.2, -0.30]], np.float32),)
    result = compare_outputs(spec, expected, opened, {"tolerance": 1.0, "tie_margin": 1e-6, "agreement": 0.95})
    assert not result["passed"] and result["decision_agreement"] == {"action.gripper_closed": 0.0}


def test_a_discrete_output_is_judged_by_argmax_except_near_ties():
    spec = navigation_spec()
    expected = (np.array([[0.1, 0.9, 0.2, 0.3], [0.5, 0.5000001, 0.0, 0.0]], np.float32),)
    flipped = (np.array([[0.1, 0.9, 0.95, 0.3], [0.5, 0.5000001, 0.0, 0.0]], np.float32),)
    result = compare_outputs(spec, expected, flipped, {"tolerance": 1.0, "tie_margin": 1e-3, "agreement": 0.95})
    assert not result["passed"] and result["decision_agreement"] == {"q_values.argmax": 0.0}
    tie = (np.array([[0.1, 0.9, 0.2, 0.3], [0.5000001, 0.5, 0.0, 0.0]], np.float32),)  # a near-tie flips
    result = compare_outputs(spec, expected, tie)
    assert result["passed"] and result["near_ties"] == 1


def test_one_percentile_definition():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99 and percentile(values, 100) == 100
    assert percentile([4, 1, 3, 2], 50) == 2          # nearest rank, never the interpolated 2.5
    assert percentile([7.0], 99) == 7.0


def test_seed_bases_live_in_config_only():
    defined = {}
    for f in PACKAGE.rglob("*.py"):
        for name in re.findall(r"^([A-Z_]*SEED[A-Z_]*)\s*=", f.read_text(), flags=re.M):
            defined.setdefault(name, []).append(f.relative_to(PACKAGE).as_posix())
    assert defined and all(files == ["config.py"] for files in defined.values()), defined


def test_device_setting():
    from embodied_lib.config import resolve_device

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="use auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU is visible here"):
            resolve_device("cuda")
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            resolve_device("cuda:1")
