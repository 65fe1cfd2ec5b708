"""TabletopEnv: a MuJoCo table, a cube at a random pose, a Cartesian two-finger gripper, a fixed camera.

The task of notebook 02 (the scripted expert that demonstrates it: ``manipulation.expert``): grasp the cube and lift it. Physics and rendering are MuJoCo's (CPU
rendering through EGL or OSMesa: set ``MUJOCO_GL``; default here ``egl``).

Observation (a Dict, the contract with ManipulationNet and its exports):
    image  uint8 [400, 400, 3]  RGB from the fixed camera "front" (the model takes it as float [0, 1], CHW)
    state  float32 [10]         see STATE_FIELDS

Action: float32 [4] = [dx, dy, dz, gripper], each clipped to [-1, 1]. dx, dy, dz move the
gripper's position target by up to MAX_STEP metres per step (25 Hz control); gripper > 0 closes
the fingers, <= 0 opens them.

Success: the cube's centre is LIFT_HEIGHT above its resting height while the fingers hold it.
"""
from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
from gymnasium import spaces

os.environ.setdefault("MUJOCO_GL", "egl")



def _load_triton_before_mesa() -> None:
    """Mesa's software renderer (llvmpipe, behind EGL) loads its LLVM; triton (which torchvision and torch.compile
    import) carries its own, and loading triton *after* a Mesa context exists crashes the process (SIGSEGV in
    triton's import, measured: render a frame, then `import triton`). Loading it first is harmless."""
    try:
        import triton  # noqa: F401
    except ImportError:   # torch builds without triton (CPU-only wheels): nothing to clash with
        pass


IMAGE_SIZE = 400
STATE_FIELDS = ("gripper_x", "gripper_y", "gripper_z", "gripper_vx", "gripper_vy", "gripper_vz",
                "finger_left", "finger_right", "gripper_command", "time_fraction")
ACTION_FIELDS = ("dx", "dy", "dz", "gripper")
MAX_STEP = 0.02          # metres of position-target change per control step at |action| = 1
CONTROL_HZ = 25
PHYSICS_DT = 0.002
FINGER_CLOSED = 0.035    # finger slide target when closing (metres)
CUBE_HALF = 0.02
TABLE_TOP = 0.40
GRIPPER_HOME = 0.60      # world z of the gripper body at joint position 0
LIFT_HEIGHT = 0.08
HOLD_RADIUS = 0.03       # a cube counts as held when its centre is this close (x, y) to the closed gripper's
SETTLE_STEPS = 50        # physics steps at reset that let the cube come to rest on the table
CUBE_XY_RANGE = 0.12     # cube spawns uniformly in [-r, r]^2 around the table centre
# Where the gripper's position targets may go, per joint (gx, gy, gz, relative to its home), and so in the world:
# the actuators' control ranges, and the workspace the safety guard keeps every target inside.
JOINT_RANGES = {"gx": (-0.3, 0.3), "gy": (-0.3, 0.3), "gz": (-0.2, 0.25)}
WORKSPACE_LOW = (JOINT_RANGES["gx"][0], JOINT_RANGES["gy"][0], round(GRIPPER_HOME + JOINT_RANGES["gz"][0], 6))
WORKSPACE_HIGH = (JOINT_RANGES["gx"][1], JOINT_RANGES["gy"][1], round(GRIPPER_HOME + JOINT_RANGES["gz"][1], 6))
GRIPPER_COMMAND_FIELD = 8  # STATE_FIELDS index of the last gripper command (+1 closed, -1 open)

SCENE_XML = f"""
<mujoco model="tabletop">
  <option timestep="{PHYSICS_DT}" gravity="0 0 -9.81" integrator="implicitfast"/>
  <visual><global offwidth="{IMAGE_SIZE}" offheight="{IMAGE_SIZE}"/><quality shadowsize="0"/></visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" width="64" height="64" rgb1=".85 .85 .8" rgb2=".72 .72 .68"/>
    <material name="table" texture="grid" texrepeat="4 4"/>
  </asset>
  <worldbody>
    <light pos="0 -.3 2" dir="0 .15 -1" diffuse=".8 .8 .8" castshadow="false"/>
    <geom name="floor" type="plane" size="2 2 .1" rgba=".3 .3 .35 1"/>
    <geom name="table" type="box" pos="0 0 {TABLE_TOP / 2}" size=".35 .35 {TABLE_TOP / 2}" material="table"/>
    <camera name="front" pos="0 -.62 .95" xyaxes="1 0 0 0 .75 .66" fovy="50"/>
    <body name="cube" pos="0 0 {TABLE_TOP + CUBE_HALF}">
      <freejoint name="cube"/>
      <geom name="cube" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" mass=".05" rgba=".85 .15 .15 1"
            friction="1.5 .005 .0001"/>
    </body>
    <body name="gripper" pos="0 0 {GRIPPER_HOME}">
      <joint name="gx" type="slide" axis="1 0 0" range="{JOINT_RANGES['gx'][0]} {JOINT_RANGES['gx'][1]}" damping="30"/>
      <joint name="gy" type="slide" axis="0 1 0" range="{JOINT_RANGES['gy'][0]} {JOINT_RANGES['gy'][1]}" damping="30"/>
      <joint name="gz" type="slide" axis="0 0 1" range="{JOINT_RANGES['gz'][0]} {JOINT_RANGES['gz'][1]}" damping="30"/>
      <geom name="palm" type="box" size=".05 .015 .01" pos="0 0 .035" mass=".2" rgba=".2 .2 .25 1"/>
      <body name="finger_left" pos="-.04 0 0">
        <joint name="fl" type="slide" axis="1 0 0" range="0 {FINGER_CLOSED}" damping="5"/>
        <geom name="finger_left" type="box" size=".006 .012 .03" mass=".02" rgba=".2 .5 .9 1" friction="2 .005 .0001"/>
      </body>
      <body name="finger_right" pos=".04 0 0">
        <joint name="fr" type="slide" axis="-1 0 0" range="0 {FINGER_CLOSED}" damping="5"/>
        <geom name="finger_right" type="box" size=".006 .012 .03" mass=".02" rgba=".2 .5 .9 1" friction="2 .005 .0001"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <position name="ax" joint="gx" kp="1000" ctrlrange="{JOINT_RANGES['gx'][0]} {JOINT_RANGES['gx'][1]}"/>
    <position name="ay" joint="gy" kp="1000" ctrlrange="{JOINT_RANGES['gy'][0]} {JOINT_RANGES['gy'][1]}"/>
    <position name="az" joint="gz" kp="1000" ctrlrange="{JOINT_RANGES['gz'][0]} {JOINT_RANGES['gz'][1]}"/>
    <position name="afl" joint="fl" kp="200" ctrlrange="0 {FINGER_CLOSED}"/>
    <position name="afr" joint="fr" kp="200" ctrlrange="0 {FINGER_CLOSED}"/>
  </actuator>
</mujoco>
"""


class TabletopEnv(gym.Env):
    """Grasp-and-lift with a Cartesian gripper; ``reset(seed=s)`` always places the cube the same way."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, max_steps: int = 80, render_mode: str | None = "rgb_array", image_size: int = IMAGE_SIZE):
        import mujoco

        self._mujoco = mujoco
        self.model = mujoco.MjModel.from_xml_string(SCENE_XML)
        self.data = mujoco.MjData(self.model)
        _load_triton_before_mesa()
        self.renderer = mujoco.Renderer(self.model, image_size, image_size)
        self.max_steps, self.render_mode, self.image_size = max_steps, render_mode, image_size
        # False: observations carry the state only (image None) and the caller renders when it wants a frame,
        # so a controller can time its camera apart from its physics (embodied_lib.deploy.robots)
        self.observe_image = True
        self.substeps = round(1.0 / CONTROL_HZ / PHYSICS_DT)
        self.observation_space = spaces.Dict({
            "image": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
            "state": spaces.Box(-np.inf, np.inf, (len(STATE_FIELDS),), np.float32),
        })
        self.action_space = spaces.Box(-1.0, 1.0, (len(ACTION_FIELDS),), np.float32)
        self._cube_qpos = self.model.jnt_qposadr[self.model.joint("cube").id]
        self._gripper_qpos = [self.model.jnt_qposadr[self.model.joint(j).id] for j in ("gx", "gy", "gz", "fl", "fr")]
        self._gripper_qvel = [self.model.jnt_dofadr[self.model.joint(j).id] for j in ("gx", "gy", "gz")]
        self.cube_body = self.model.body("cube").id
        self.gripper_body = self.model.body("gripper").id

    # -- gymnasium API ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._place()
        self._settle()
        return self._observation(), self._info()

    def initial_state(self, seed: int) -> np.ndarray:
        """Scene ``seed`` as MuJoCo's integration state (``mjSTATE_INTEGRATION``) before it settles: what a
        C++ controller loads with ``mj_setState`` and then settles the same way (``mj_forward``, SETTLE_STEPS x
        ``mj_step``), so its physics is this environment's, step for step."""
        gym.Env.reset(self, seed=seed)
        self._place()
        spec = self._mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(self._mujoco.mj_stateSize(self.model, spec))
        self._mujoco.mj_getState(self.model, self.data, state, spec)
        return state

    def _place(self) -> None:
        """Cube and gripper at the poses of this episode's seed (``self.np_random``), nothing simulated yet."""
        mj = self._mujoco
        mj.mj_resetData(self.model, self.data)
        xy = self.np_random.uniform(-CUBE_XY_RANGE, CUBE_XY_RANGE, size=2)
        yaw = self.np_random.uniform(-np.pi / 4, np.pi / 4)
        q = self._cube_qpos
        self.data.qpos[q:q + 3] = [xy[0], xy[1], TABLE_TOP + CUBE_HALF]
        self.data.qpos[q + 3:q + 7] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        start = self.np_random.uniform([-0.1, -0.1, 0.0], [0.1, 0.1, 0.08])
        for i, value in enumerate(start):
            self.data.qpos[self._gripper_qpos[i]] = value
        self.data.ctrl[:] = [*start, 0.0, 0.0]

    def _settle(self) -> None:
        mj = self._mujoco
        self.gripper_command = -1.0
        mj.mj_forward(self.model, self.data)
        for _ in range(SETTLE_STEPS):  # let the cube settle on the table
            mj.mj_step(self.model, self.data)
        self.steps = 0
        self.cube_rest_z = float(self.data.xpos[self.cube_body][2])

    def step(self, action):
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (len(ACTION_FIELDS),) or not np.isfinite(action).all():
            raise ValueError(f"action must be 4 finite floats [dx, dy, dz, gripper], got {action!r}")
        action = np.clip(action, -1.0, 1.0)
        self.data.ctrl[:3] = np.clip(self.data.ctrl[:3] + action[:3] * MAX_STEP,
                                     self.model.actuator_ctrlrange[:3, 0], self.model.actuator_ctrlrange[:3, 1])
        self.gripper_command = 1.0 if action[3] > 0 else -1.0
        self.data.ctrl[3:5] = FINGER_CLOSED if self.gripper_command > 0 else 0.0
        for _ in range(self.substeps):
            self._mujoco.mj_step(self.model, self.data)
        self.steps += 1
        info = self._info()
        terminated = info["success"]
        truncated = not terminated and self.steps >= self.max_steps
        reward = 1.0 if terminated else -0.01
        return self._observation(), reward, terminated, truncated, info

    def render(self):
        self.renderer.update_scene(self.data, camera="front")
        return self.renderer.render().copy()

    def close(self):
        self.renderer.close()

    # -- observation, privileged info ---------------------------------------------------------------
    def read_state(self) -> np.ndarray:
        """The robot state of STATE_FIELDS now (what the joint encoders report), without rendering."""
        return self._state()

    def _state(self) -> np.ndarray:
        q = self.data.qpos
        pos = self.data.xpos[self.gripper_body]
        vel = [self.data.qvel[i] for i in self._gripper_qvel]
        fingers = [q[self._gripper_qpos[3]], q[self._gripper_qpos[4]]]
        return np.array([*pos, *vel, *fingers, self.gripper_command, self.steps / self.max_steps], dtype=np.float32)

    def _observation(self):
        return {"image": self.render() if self.observe_image else None, "state": self._state()}

    def cube_position(self) -> np.ndarray:
        """Privileged: for the scripted expert and evaluation only, never a policy input."""
        return self.data.xpos[self.cube_body].copy()

    def _info(self):
        cube = self.cube_position()
        lifted = cube[2] - getattr(self, "cube_rest_z", cube[2])
        held = self.gripper_command > 0 and np.linalg.norm(cube[:2] - self.data.xpos[self.gripper_body][:2]) < HOLD_RADIUS
        return {"cube_position": cube, "lift": float(lifted), "success": bool(lifted >= LIFT_HEIGHT and held)}


if "embodied/Tabletop-v0" not in gym.registry:
    gym.register("embodied/Tabletop-v0", entry_point=TabletopEnv)
