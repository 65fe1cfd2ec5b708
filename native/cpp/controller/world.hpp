// The simulated robots of the controller, the same worlds as Python's (embodied_lib.navigation.env,
// embodied_lib.manipulation.env), read from the files embodied_lib.deploy.native_controller.write_episodes writes:
//   GridWorld  the held-out grid maps (maps.json); the robot-centred observation built as encode_observation does.
//   Tabletop   TabletopEnv's MJCF (tabletop.xml) in MuJoCo's C library, each held-out scene loaded as MuJoCo's
//              integration state and settled as Python settles it; the camera renders through MuJoCo's own
//              renderer in an EGL context (Mesa), as Python's mujoco.Renderer does with MUJOCO_GL=egl, in a
//              camera process of its own (CameraProcess): on a robot the camera is not in the controller either,
//              and Mesa's software renderer (LLVM's JIT: 67 of the controller's 123 MB) stays out of its memory.
// Nothing here allocates after construction: observations go into caller-owned buffers.
#pragma once

#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <mujoco/mujoco.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <new>
#include <memory>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace world {

using json = nlohmann::json;

inline const json& need(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) throw std::runtime_error(where + " has no \"" + key + "\"; re-write the episodes");
  return j.at(key);
}

// ---------------------------------------------------------------------------------------------- grid world
struct GridMap {
  int seed = 0, shortest_path = 0;
  std::array<int, 2> start{}, goal{};
  std::vector<uint8_t> obstacles;  // n * n, row major
};

class GridWorld {
 public:
  int n = 0, max_steps = 0, max_ticks = 0;
  std::vector<GridMap> maps;
  // episode state
  std::array<int, 2> agent{}, goal{};
  int steps = 0, moves = 0;
  bool done = false, success = false;

  GridWorld(const json& episodes, int obstacle_channel_from_manifest, int grid_size_from_manifest) {
    const std::string where = "maps.json";
    n = need(episodes, "grid_size", where).get<int>();
    if (n != grid_size_from_manifest)
      throw std::runtime_error("maps.json is a " + std::to_string(n) + "-grid but the navigation model takes " +
                               std::to_string(grid_size_from_manifest) + "; write the episodes from these exports");
    max_steps = need(episodes, "max_steps", where).get<int>();
    max_ticks = need(episodes, "max_ticks", where).get<int>();
    const auto& channels = need(episodes, "channels", where);
    for (size_t i = 0; i < channels.size(); ++i) {
      const std::string c = channels[i].get<std::string>();
      if (c == "agent") ch_agent = int(i);
      else if (c == "goal") ch_goal = int(i);
      else if (c == "obstacle") ch_obstacle = int(i);
      else if (c == "visited") ch_visited = int(i);
    }
    n_channels = int(channels.size());
    if (ch_agent < 0 || ch_goal < 0 || ch_obstacle < 0 || ch_visited < 0 || ch_obstacle != obstacle_channel_from_manifest)
      throw std::runtime_error("maps.json channels do not match the navigation manifest's observation layout");
    for (const auto& d : need(episodes, "action_deltas", where)) deltas.push_back({d[0].get<int>(), d[1].get<int>()});
    for (const auto& m : need(episodes, "maps", where)) {
      GridMap map;
      map.seed = m.at("seed").get<int>();
      map.shortest_path = m.at("shortest_path").get<int>();
      map.start = {m.at("start")[0].get<int>(), m.at("start")[1].get<int>()};
      map.goal = {m.at("goal")[0].get<int>(), m.at("goal")[1].get<int>()};
      const auto& rows = m.at("obstacles");
      if (int(rows.size()) != n) throw std::runtime_error("map " + std::to_string(map.seed) + " is not " + std::to_string(n) + " rows");
      for (const auto& row : rows) {
        if (int(row.size()) != n) throw std::runtime_error("map " + std::to_string(map.seed) + " has a short row");
        for (const auto& v : row) map.obstacles.push_back(v.get<int>() ? 1 : 0);
      }
      for (int v : {map.start[0], map.start[1], map.goal[0], map.goal[1]})
        if (v < 0 || v >= n) throw std::runtime_error("map " + std::to_string(map.seed) + " has a cell off the grid");
      maps.push_back(std::move(map));
    }
    if (maps.empty()) throw std::runtime_error("maps.json holds no maps");
    visited.assign(size_t(n) * n, 0);
  }

  int observation_size() const { return n * n * n_channels; }

  void reset(size_t index) {
    map = &maps[index % maps.size()];
    agent = map->start;
    goal = map->goal;
    std::fill(visited.begin(), visited.end(), 0);
    visited[size_t(agent[0]) * n + agent[1]] = 1;
    steps = moves = 0;
    done = success = false;
  }

  // GridWorldEnv.set_goal: a spoken go_to's cell becomes the goal; "" when it can, else why not.
  std::string set_goal(int row, int col) {
    if (row < 0 || col < 0 || row >= n || col >= n)
      return "cell (" + std::to_string(row) + ", " + std::to_string(col) + ") is outside the " + std::to_string(n) +
             " x " + std::to_string(n) + " grid";
    if (blocked(row, col)) return "cell (" + std::to_string(row) + ", " + std::to_string(col) + ") is an obstacle on this map";
    std::vector<int> distance(size_t(n) * n, -1), queue{row * n + col};
    distance[size_t(row) * n + col] = 0;
    for (size_t head = 0; head < queue.size(); ++head) {
      const int r = queue[head] / n, c = queue[head] % n;
      for (const auto& d : deltas)
        if (!blocked(r + d[0], c + d[1]) && distance[size_t(r + d[0]) * n + c + d[1]] < 0) {
          distance[size_t(r + d[0]) * n + c + d[1]] = distance[size_t(r) * n + c] + 1;
          queue.push_back((r + d[0]) * n + c + d[1]);
        }
    }
    if (distance[size_t(agent[0]) * n + agent[1]] < 0)
      return "cell (" + std::to_string(row) + ", " + std::to_string(col) + ") cannot be reached from the robot's cell (" +
             std::to_string(agent[0]) + ", " + std::to_string(agent[1]) + ")";
    goal = {row, col};
    success = agent == goal;
    return "";
  }

  bool blocked(int r, int c) const { return r < 0 || c < 0 || r >= n || c >= n || map->obstacles[size_t(r) * n + c]; }

  // Python's encode_observation: an n x n window centred on the robot, [channel, row, col] flattened.
  void observe(float* out) const {
    const int centre = n / 2, plane = n * n;
    std::fill(out, out + observation_size(), 0.0f);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        const int r = agent[0] + i - centre, c = agent[1] + j - centre;
        const bool inside = r >= 0 && c >= 0 && r < n && c < n;
        out[ch_obstacle * plane + i * n + j] = inside ? float(map->obstacles[size_t(r) * n + c]) : 1.0f;
        out[ch_visited * plane + i * n + j] = inside ? float(visited[size_t(r) * n + c]) : 0.0f;
      }
    out[ch_agent * plane + centre * n + centre] = 1.0f;
    const int gi = std::min(std::max(goal[0] - agent[0] + centre, 0), n - 1);
    const int gj = std::min(std::max(goal[1] - agent[1] + centre, 0), n - 1);
    out[ch_goal * plane + gi * n + gj] = 1.0f;
  }

  // GridWorldEnv.step: a legal move moves, a bump stays; the goal ends the episode, max_steps truncates it.
  void step(int action) {
    if (done || action < 0 || action >= int(deltas.size())) return;
    ++steps;
    ++moves;
    const int r = agent[0] + deltas[action][0], c = agent[1] + deltas[action][1];
    if (!blocked(r, c)) {
      agent = {r, c};
      visited[size_t(r) * n + c] = 1;
    }
    success = agent == goal;
    done = success || steps >= max_steps;
  }

 private:
  const GridMap* map = nullptr;
  std::vector<uint8_t> visited;
  std::vector<std::array<int, 2>> deltas;
  int ch_agent = -1, ch_goal = -1, ch_obstacle = -1, ch_visited = -1, n_channels = 0;
};

// ---------------------------------------------------------------------------------------------- EGL
// A headless OpenGL context on an EGL device, made the way mujoco.egl makes Python's (first device that
// initializes, RGBA8 + depth 24 + stencil 8, pbuffer-capable config, no surface).
class EglContext {
 public:
  EglContext() {
    auto query_devices = reinterpret_cast<PFNEGLQUERYDEVICESEXTPROC>(eglGetProcAddress("eglQueryDevicesEXT"));
    auto platform_display = reinterpret_cast<PFNEGLGETPLATFORMDISPLAYEXTPROC>(eglGetProcAddress("eglGetPlatformDisplayEXT"));
    if (!query_devices || !platform_display)
      throw std::runtime_error("EGL has no device extension (EGL_EXT_device_enumeration); install Mesa's EGL "
                               "(Debian: libegl1 libegl-mesa0)");
    EGLDeviceEXT devices[16];
    EGLint count = 0;
    if (!query_devices(16, devices, &count) || count < 1) throw std::runtime_error("EGL found no rendering device");
    for (EGLint i = 0; i < count && display == EGL_NO_DISPLAY; ++i) {
      EGLDisplay d = platform_display(EGL_PLATFORM_DEVICE_EXT, devices[i], nullptr);
      if (d != EGL_NO_DISPLAY && eglInitialize(d, nullptr, nullptr)) display = d;
    }
    if (display == EGL_NO_DISPLAY) throw std::runtime_error("cannot initialize an EGL device display");
    const EGLint attributes[] = {EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8, EGL_BLUE_SIZE, 8, EGL_ALPHA_SIZE, 8,
                                 EGL_DEPTH_SIZE, 24, EGL_STENCIL_SIZE, 8, EGL_COLOR_BUFFER_TYPE, EGL_RGB_BUFFER,
                                 EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT, EGL_NONE};
    EGLConfig config;
    EGLint configs = 0;
    if (!eglChooseConfig(display, attributes, &config, 1, &configs) || configs < 1)
      throw std::runtime_error("EGL has no RGBA8/depth24 OpenGL configuration");
    eglBindAPI(EGL_OPENGL_API);
    context = eglCreateContext(display, config, EGL_NO_CONTEXT, nullptr);
    if (context == EGL_NO_CONTEXT) throw std::runtime_error("cannot create an EGL OpenGL context");
    make_current();
  }
  void make_current() {
    if (!eglMakeCurrent(display, EGL_NO_SURFACE, EGL_NO_SURFACE, context))
      throw std::runtime_error("cannot make the EGL context current");
  }
  ~EglContext() {
    if (context != EGL_NO_CONTEXT) {
      eglMakeCurrent(display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
      eglDestroyContext(display, context);
    }
    if (display != EGL_NO_DISPLAY) eglTerminate(display);
  }
  EglContext(const EglContext&) = delete;
  EglContext& operator=(const EglContext&) = delete;

 private:
  EGLDisplay display = EGL_NO_DISPLAY;
  EGLContext context = EGL_NO_CONTEXT;
};

// ---------------------------------------------------------------------------------------------- camera process
// The tabletop's camera in a child process: forked before it opens EGL, it renders MuJoCo's scene from a copy of
// the parent's mjData buffer (every array mjv_updateScene reads: the kinematics exactly as the last step left
// them, so frames stay pixel-identical to Python's) into shared memory. One request, one frame: two process-shared
// semaphores in a shared mapping made before the fork, so a frame costs the controller no allocation. A camera
// that dies or hangs is an error (after `start_s` to open, `frame_s` a frame), never a hang; the child dies with
// its parent (PDEATHSIG).
class CameraProcess {
 public:
  // `open` runs in the child, before its first frame (EGL, scene, context); `draw(rgb)` renders one frame.
  template <class Open, class Draw>
  CameraProcess(size_t state_bytes, size_t frame_bytes, Open open, Draw draw, double start_s = 30.0, double frame_s = 5.0)
      : state_bytes(state_bytes), frame_bytes(frame_bytes), frame_s(frame_s) {
    bytes = sizeof(Shared) + state_bytes + frame_bytes;
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::runtime_error("cannot map the camera's shared memory");
    shared = new (m) Shared();
    if (sem_init(&shared->request, 1, 0) != 0 || sem_init(&shared->done, 1, 0) != 0)
      throw std::runtime_error("cannot make the camera's semaphores");
    const pid_t parent = getpid();
    child = fork();
    if (child < 0) throw std::runtime_error("cannot start the camera process (fork)");
    if (child == 0) serve(parent, open, draw);  // never returns
    wait_done("start", start_s);               // the child has opened its camera (or says why not)
  }
  ~CameraProcess() {
    if (child > 0) {
      shared->quit = 1;
      sem_post(&shared->request);
      int status = 0;
      if (!wait_for_exit(status)) kill(child, SIGKILL), waitpid(child, &status, 0);
    }
    if (shared) munmap(shared, bytes);
  }
  CameraProcess(const CameraProcess&) = delete;
  CameraProcess& operator=(const CameraProcess&) = delete;

  uint8_t* state() { return reinterpret_cast<uint8_t*>(shared + 1); }
  // Render the state the caller wrote into state(); the frame lands in `rgb`.
  void render(uint8_t* rgb) {
    sem_post(&shared->request);
    wait_done("render a frame", frame_s);
    std::memcpy(rgb, state() + state_bytes, frame_bytes);
  }

 private:
  struct Shared {
    sem_t request, done;
    volatile int quit = 0, failed = 0;
    char error[300] = "";
  };
  size_t state_bytes, frame_bytes, bytes = 0;
  double frame_s;
  Shared* shared = nullptr;
  pid_t child = -1;

  template <class Open, class Draw>
  [[noreturn]] void serve(pid_t parent, Open& open, Draw& draw) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);  // the parent died before the line above
    try {
      open();
      sem_post(&shared->done);
      for (;;) {
        while (sem_wait(&shared->request) != 0) {}
        if (shared->quit) _exit(0);
        draw(state(), state() + state_bytes);
        sem_post(&shared->done);
      }
    } catch (const std::exception& e) {
      std::snprintf(shared->error, sizeof(shared->error), "%s", e.what());
      shared->failed = 1;
      sem_post(&shared->done);
      _exit(1);
    }
  }

  void wait_done(const char* what, double timeout_s) {
    timespec until{};
    clock_gettime(CLOCK_REALTIME, &until);  // sem_timedwait's clock
    const long ns = long(timeout_s * 1e9);
    until.tv_sec += ns / 1000000000L + (until.tv_nsec + ns % 1000000000L) / 1000000000L;
    until.tv_nsec = (until.tv_nsec + ns % 1000000000L) % 1000000000L;
    int r;
    while ((r = sem_timedwait(&shared->done, &until)) != 0 && errno == EINTR) {}
    if (r != 0) throw std::runtime_error(std::string("the camera process did not ") + what + " within " +
                                         std::to_string(int(timeout_s)) + " s");
    if (shared->failed) throw std::runtime_error(std::string("the camera process failed: ") + shared->error);
  }

  bool wait_for_exit(int& status) {
    for (int i = 0; i < 200; ++i) {  // 2 s
      if (waitpid(child, &status, WNOHANG) == child) return true;
      usleep(10000);
    }
    return false;
  }
};

// ---------------------------------------------------------------------------------------------- tabletop
class Tabletop {
 public:
  int image_size = 0, max_steps = 0, substeps = 0, settle_steps = 0;
  double max_step_m = 0, finger_closed = 0, lift_height = 0, hold_radius = 0;
  std::vector<int> seeds;
  // episode state
  int steps = 0;
  double gripper_command = -1.0, lift = 0.0;
  bool done = false, success = false;

  Tabletop(const json& episodes, const std::string& folder, bool with_camera) {
    const std::string where = "scenes.json";
    const std::string xml = folder + "/" + need(episodes, "model", where).get<std::string>();
    char error[1000] = "";
    model = mj_loadXML(xml.c_str(), nullptr, error, sizeof(error));
    if (!model) throw std::runtime_error("MuJoCo cannot load " + xml + ": " + error);
    data = mj_makeData(model);
    if (need(episodes, "state_spec", where).get<std::string>() != "mjSTATE_INTEGRATION")
      throw std::runtime_error("scenes.json states are not mjSTATE_INTEGRATION");
    settle_steps = need(episodes, "settle_steps", where).get<int>();
    image_size = need(episodes, "image_size", where).get<int>();
    max_steps = need(episodes, "max_steps", where).get<int>();
    substeps = need(episodes, "substeps", where).get<int>();
    max_step_m = need(episodes, "max_step_m", where).get<double>();
    finger_closed = need(episodes, "finger_closed", where).get<double>();
    lift_height = need(episodes, "lift_height", where).get<double>();
    hold_radius = need(episodes, "hold_radius", where).get<double>();
    const auto& joints = need(episodes, "joints", where);
    for (const auto& name : joints.at("position")) {
      const int j = id(mjOBJ_JOINT, name.get<std::string>());
      position_qpos.push_back(model->jnt_qposadr[j]);
      position_dof.push_back(model->jnt_dofadr[j]);
    }
    for (const auto& name : joints.at("fingers")) finger_qpos.push_back(model->jnt_qposadr[id(mjOBJ_JOINT, name.get<std::string>())]);
    if (position_qpos.size() != 3 || finger_qpos.size() != 2 || model->nu != 5)
      throw std::runtime_error("tabletop.xml is not TabletopEnv's scene (3 position joints, 2 fingers, 5 actuators)");
    gripper_body = id(mjOBJ_BODY, need(episodes, "gripper_body", where).get<std::string>());
    cube_body = id(mjOBJ_BODY, need(episodes, "cube_body", where).get<std::string>());
    const int size = mj_stateSize(model, mjSTATE_INTEGRATION);
    for (const auto& s : need(episodes, "scenes", where)) {
      seeds.push_back(s.at("seed").get<int>());
      states.push_back(s.at("state").get<std::vector<double>>());
      if (int(states.back().size()) != size)
        throw std::runtime_error("scene " + std::to_string(seeds.back()) + " has a state of " +
                                 std::to_string(states.back().size()) + " numbers, this model needs " + std::to_string(size));
    }
    if (states.empty()) throw std::runtime_error("scenes.json holds no scenes");
    if (with_camera) {
      const std::string name = need(episodes, "camera", where).get<std::string>();
      camera_process = std::make_unique<CameraProcess>(
          size_t(data->nbuffer), frame_bytes(), [this, name] { open_camera(name); },
          [this](const uint8_t* state, uint8_t* rgb) {
            std::memcpy(data->buffer, state, size_t(data->nbuffer));
            draw(rgb);
          });
    }
  }

  ~Tabletop() {
    camera_process.reset();  // the child renders; this process never opened EGL
    if (data) mj_deleteData(data);
    if (model) mj_deleteModel(model);
  }
  Tabletop(const Tabletop&) = delete;
  Tabletop& operator=(const Tabletop&) = delete;

  size_t frame_bytes() const { return size_t(image_size) * image_size * 3; }

  // TabletopEnv.reset: the scene's state, then mj_forward and the settling steps, exactly as Python runs them.
  void reset(size_t index) {
    mj_resetData(model, data);
    mj_setState(model, data, states[index % states.size()].data(), mjSTATE_INTEGRATION);
    gripper_command = -1.0;
    mj_forward(model, data);
    for (int i = 0; i < settle_steps; ++i) mj_step(model, data);
    steps = 0;
    cube_rest_z = data->xpos[3 * cube_body + 2];
    lift = 0.0;
    done = success = false;
  }

  // STATE_FIELDS: gripper position, its velocity, the two fingers, the last gripper command, time fraction.
  void read_state(float* out) const {
    for (int i = 0; i < 3; ++i) out[i] = float(data->xpos[3 * gripper_body + i]);
    for (int i = 0; i < 3; ++i) out[3 + i] = float(data->qvel[position_dof[i]]);
    out[6] = float(data->qpos[finger_qpos[0]]);
    out[7] = float(data->qpos[finger_qpos[1]]);
    out[8] = float(gripper_command);
    out[9] = float(double(steps) / max_steps);
  }

  // RGB, top row first, of the scene as the last step left it: drawn by the camera process from this mjData's
  // buffer (its fixed-size arrays: qpos, the kinematics, ...; same model, so the same layout).
  void render(uint8_t* rgb) {
    if (!camera_process) throw std::runtime_error("this tabletop has no camera");
    std::memcpy(camera_process->state(), data->buffer, size_t(data->nbuffer));
    camera_process->render(rgb);
  }

 private:
  // In the camera process: MuJoCo's renderer on the copied state (MuJoCo reads bottom-up; Python flips the same way).
  void draw(uint8_t* rgb) {
    mjv_updateScene(model, data, &option, nullptr, &camera, mjCAT_ALL, &scene);
    const mjrRect rect{0, 0, image_size, image_size};
    mjr_render(rect, &scene, &context);
    mjr_readPixels(rgb, nullptr, rect, &context);
    const size_t row = size_t(image_size) * 3;
    for (int top = 0, bottom = image_size - 1; top < bottom; ++top, --bottom)
      std::swap_ranges(rgb + top * row, rgb + (top + 1) * row, rgb + bottom * row);
  }

 public:
  // TabletopEnv.step: move the position targets by action * max_step (inside the actuators' ranges), close or
  // open the fingers, simulate one control period.
  void step(const float* action) {
    if (done) return;
    for (int i = 0; i < 3; ++i) {
      // float32 arithmetic for the step, as NumPy does it on the float32 action
      const float delta = std::min(1.0f, std::max(-1.0f, action[i])) * float(max_step_m);
      const double* range = model->actuator_ctrlrange + 2 * i;
      data->ctrl[i] = std::min(range[1], std::max(range[0], data->ctrl[i] + double(delta)));
    }
    gripper_command = action[3] > 0 ? 1.0 : -1.0;
    data->ctrl[3] = data->ctrl[4] = gripper_command > 0 ? finger_closed : 0.0;
    for (int i = 0; i < substeps; ++i) mj_step(model, data);
    ++steps;
    const double* cube = data->xpos + 3 * cube_body;
    const double* grip = data->xpos + 3 * gripper_body;
    lift = cube[2] - cube_rest_z;
    const bool held = gripper_command > 0 && std::hypot(cube[0] - grip[0], cube[1] - grip[1]) < hold_radius;
    success = lift >= lift_height && held;
    done = success || steps >= max_steps;
  }

 private:
  mjModel* model = nullptr;
  mjData* data = nullptr;
  std::vector<std::vector<double>> states;
  std::vector<int> position_qpos, position_dof, finger_qpos;
  int gripper_body = -1, cube_body = -1;
  double cube_rest_z = 0.0;
  // camera: the process, and in it the renderer's state
  std::unique_ptr<CameraProcess> camera_process;
  std::unique_ptr<EglContext> egl;
  mjvScene scene;
  mjrContext context;
  mjvCamera camera;
  mjvOption option;

  int id(mjtObj type, const std::string& name) const {
    const int i = mj_name2id(model, type, name.c_str());
    if (i < 0) throw std::runtime_error("tabletop.xml has no " + name);
    return i;
  }

  void open_camera(const std::string& name) {
    if (model->vis.global.offwidth < image_size || model->vis.global.offheight < image_size)
      throw std::runtime_error("tabletop.xml's offscreen buffer is smaller than the camera image");
    egl = std::make_unique<EglContext>();
    mjv_defaultScene(&scene);
    mjr_defaultContext(&context);
    mjv_defaultOption(&option);
    mjv_defaultCamera(&camera);
    mjv_makeScene(model, &scene, 10000);  // mujoco.Renderer's max_geom
    mjr_makeContext(model, &context, mjFONTSCALE_150);
    mjr_setBuffer(mjFB_OFFSCREEN, &context);
    if (context.currentBuffer != mjFB_OFFSCREEN) throw std::runtime_error("MuJoCo has no offscreen framebuffer here");
    camera.type = mjCAMERA_FIXED;
    camera.fixedcamid = id(mjOBJ_CAMERA, name);
  }
};

}  // namespace world
