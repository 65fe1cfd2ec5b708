"""TabletopEnv (MuJoCo): gymnasium contract, seeding, the scripted expert, bad actions."""
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from embodied_lib.manipulation.env import ACTION_FIELDS, IMAGE_SIZE, STATE_FIELDS, TabletopEnv
from embodied_lib.manipulation.expert import scripted_expert_action


@pytest.fixture(scope="module")
def env():
    e = TabletopEnv()
    yield e
    e.close()


def test_passes_gymnasium_env_checker():
    check_env(TabletopEnv(image_size=64), skip_render_check=True)


def test_observation_and_action_contract(env):
    obs, info = env.reset(seed=0)
    assert obs["image"].shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].shape == (len(STATE_FIELDS),) == (10,) and obs["state"].dtype == np.float32
    assert env.action_space.shape == (len(ACTION_FIELDS),) == (4,)
    assert obs["image"].std() > 10  # a real rendered scene, not a blank frame
    assert not info["success"] and abs(info["lift"]) < 1e-3


def test_same_seed_same_scene(env):
    a, _ = env.reset(seed=5)
    cube_a = env.cube_position()
    b, _ = env.reset(seed=5)
    assert np.array_equal(a["image"], b["image"]) and np.allclose(cube_a, env.cube_position())
    env.reset(seed=6)
    assert not np.allclose(cube_a, env.cube_position())


def test_scripted_expert_grasps_and_lifts(env):
    successes = []
    for seed in range(10):
        env.reset(seed=100 + seed)
        done, info = False, {}
        while not done:
            _, _, terminated, truncated, info = env.step(scripted_expert_action(env))
            done = terminated or truncated
        successes.append(info["success"])
    assert np.mean(successes) >= 0.9, successes


def test_expert_recovers_from_a_missed_grasp(env):
    """Close the fingers 3 cm beside the cube; the expert must open, re-aim and still lift it."""
    successes, reopened = [], []
    for seed in range(5):
        env.reset(seed=200 + seed)
        cube = env.cube_position()
        for _ in range(12):
            target = np.array([cube[0] + 0.03, cube[1], cube[2] + 0.005])
            env.step(np.array([*np.clip((target - env.data.xpos[env.gripper_body]) / 0.02, -1, 1), -1], np.float32))
        env.step(np.array([0, 0, 0, 1], np.float32))           # the mistake: grasp beside the cube
        first = scripted_expert_action(env)
        reopened.append(first[3] < 0)
        done, info = False, {}
        while not done:
            _, _, terminated, truncated, info = env.step(scripted_expert_action(env))
            done = terminated or truncated
        successes.append(info["success"])
    assert all(reopened) and np.mean(successes) >= 0.8, (reopened, successes)


def test_random_actions_rarely_lift(env):
    rng = np.random.default_rng(0)
    env.reset(seed=1)
    for _ in range(40):
        *_, info = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
    assert not info["success"]


@pytest.mark.parametrize("action", [np.zeros(3), np.array([0, 0, np.nan, 1.0]), np.zeros((1, 4))])
def test_bad_actions_are_refused(env, action):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action must be 4 finite floats"):
        env.step(action)


def test_torchvision_can_be_imported_after_a_frame_was_rendered():
    """Mesa's llvmpipe and triton each bring an LLVM; triton loaded after a Mesa context crashed the process."""
    import subprocess
    import sys

    code = ("from embodied_lib.manipulation.env import TabletopEnv\n"
            "env = TabletopEnv(); env.reset(seed=1); env.close()\n"
            "import torchvision\nprint('imported')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "imported" in proc.stdout, (proc.returncode, proc.stderr[-500:])
