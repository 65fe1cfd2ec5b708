// The safety layer of embodied_lib.deploy.guard in C++: the same checks, in the same order, with the same
// causes and fallbacks, the rules read from each manifest's metadata.safety block (never copied here).
//   reading missing -> missing_sensor; already used or from before this tick -> stale_sensor;
//   input outside the manifest's contract or the workspace -> bad_input; no model -> model_unavailable;
//   previous inference still running -> busy; not done by the deadline (watchdog) -> deadline;
//   runtime error -> model_error; NaN/Inf out -> non_finite_output; out of bounds -> out_of_bounds_output;
//   corrected, the model's intent kept: illegal_move (best legal move), workspace_limit (step shortened).
// Inference runs on one worker thread per model; the guard waits for it until the tick's deadline.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <pthread.h>
#include <thread>

#include "models.hpp"

namespace controller {

using Clock = std::chrono::steady_clock;

enum Cause : int {
  kNone = 0, kMissingSensor, kStaleSensor, kBadInput, kModelUnavailable, kBusy, kDeadline, kModelError,
  kNonFiniteOutput, kOutOfBoundsOutput, kIllegalMove, kWorkspaceLimit, kCauseCount
};
inline const char* cause_name(int c) {
  static const char* names[] = {"none", "missing_sensor", "stale_sensor", "bad_input", "model_unavailable", "busy",
                                "deadline", "model_error", "non_finite_output", "out_of_bounds_output",
                                "illegal_move", "workspace_limit"};
  return names[c];
}
inline bool is_fallback(int c) { return c != kNone && c != kIllegalMove && c != kWorkspaceLimit; }

// Injected faults (embodied_lib.deploy.faults): what each kind must end in, within its tick.
enum Fault : int { kNoFault = 0, kModelException, kNanOutput, kOutOfBounds, kLateInference, kDroppedFrame, kStaleFrame, kFaultCount };
inline const char* fault_name(int f) {
  static const char* names[] = {"none", "model_exception", "nan_output", "out_of_bounds_output", "late_inference",
                                "dropped_frame", "stale_frame"};
  return names[f];
}
inline int expected_cause(int f) {
  static const int causes[] = {kNone, kModelError, kNonFiniteOutput, kOutOfBoundsOutput, kDeadline, kMissingSensor, kStaleSensor};
  return causes[f];
}
inline int fault_from_name(const std::string& s) {
  for (int f = 1; f < kFaultCount; ++f)
    if (s == fault_name(f)) return f;
  return -1;
}

// What the robot does this tick: a move (-1 = stay) for the grid robot, [dx, dy, dz, gripper] for the gripper.
struct Action {
  int move = -1;
  std::array<float, 4> command{};
};

struct Step {
  Action action;
  int cause = kNone;
  double infer_s = 0.0;
  const char* detail = "";  // why, where there is more to say than the cause (a failing model's own message)
};

// One sensor sample: its data lives in the channel's sensor buffers; this says whether there is one and which.
struct Reading {
  bool present = false;
  uint64_t seq = 0;
  Clock::time_point stamp{};
};

// ------------------------------------------------------------------------------------------------- rules
inline const json& safety_of(const json& manifest) {
  if (!manifest.contains("metadata") || !manifest["metadata"].contains("safety"))
    throw std::runtime_error(manifest.value("model", std::string("a model")) +
                             ": the manifest has no metadata.safety block; re-export the model");
  return manifest["metadata"]["safety"];
}

struct NavigationRules {
  int n = 0, obstacle_channel = 0;
  std::vector<std::array<int, 2>> deltas;
  float low = 0, high = 1;

  explicit NavigationRules(const json& manifest) {
    const json& s = safety_of(manifest);
    n = manifest.at("metadata").at("grid_size").get<int>();
    obstacle_channel = s.at("obstacle_channel").get<int>();
    for (const json& d : s.at("action_deltas")) deltas.push_back({d[0].get<int>(), d[1].get<int>()});
    low = manifest.at("inputs")[0].at("valid")[0].get<float>();
    high = manifest.at("inputs")[0].at("valid")[1].get<float>();
  }
  int size() const { return n * n * (obstacle_channel + 2); }

  bool input_ok(const float* obs) const {
    for (int i = 0; i < size(); ++i)
      if (!std::isfinite(obs[i]) || obs[i] < low || obs[i] > high) return false;
    return true;
  }
  void fallback(Action& a) const { a.move = -1; }

  // `move` from the model (argmax, or an injected value): legal, corrected to the best legal move, or refused.
  int check_output(const float* obs, const float* q, int move, Action& a) const {
    const int actions = int(deltas.size());
    if (move < 0 || move >= actions) {
      fallback(a);
      return kOutOfBoundsOutput;
    }
    const int centre = n / 2;
    const float* blocked = obs + obstacle_channel * n * n;
    auto legal = [&](int m) { return blocked[(centre + deltas[m][0]) * n + centre + deltas[m][1]] == 0.0f; };
    if (legal(move)) {
      a.move = move;
      return kNone;
    }
    int best = -1;
    for (int m = 0; m < actions; ++m)
      if (legal(m) && (best < 0 || q[m] > q[best])) best = m;
    a.move = best;  // -1: no legal move, stay
    return kIllegalMove;
  }
};

struct ManipulationRules {
  float low_action = -1, high_action = 1;
  double max_step = 0, tolerance = 0;
  std::array<double, 3> ws_low{}, ws_high{};
  std::array<int, 3> position_fields{};
  int gripper_field = 0, state_size = 0, height = 0, width = 0, channels = 0;
  float state_low = 0, state_high = 0;
  float last_gripper = -1.0f;  // open, until a state says otherwise

  explicit ManipulationRules(const json& manifest) {
    const json& s = safety_of(manifest);
    low_action = s.at("action_bounds")[0].get<float>();
    high_action = s.at("action_bounds")[1].get<float>();
    max_step = s.at("max_step_m").get<double>();
    tolerance = s.at("workspace_m").at("tolerance").get<double>();
    for (int i = 0; i < 3; ++i) {
      ws_low[i] = s.at("workspace_m").at("low")[i].get<double>();
      ws_high[i] = s.at("workspace_m").at("high")[i].get<double>();
      position_fields[i] = s.at("position_fields")[i].get<int>();
    }
    gripper_field = s.at("gripper_command_field").get<int>();
    const json& image = manifest.at("inputs")[0].at("shape");
    const json& state = manifest.at("inputs")[1];
    channels = image[1].get<int>(), height = image[2].get<int>(), width = image[3].get<int>();
    state_size = state.at("shape")[1].get<int>();
    state_low = state.at("valid")[0].get<float>();
    state_high = state.at("valid")[1].get<float>();
    for (int f : position_fields)
      if (f < 0 || f >= state_size) throw std::runtime_error("manipulation safety.position_fields outside the state");
    if (gripper_field < 0 || gripper_field >= state_size) throw std::runtime_error("gripper_command_field outside the state");
  }

  bool input_ok(const float* state) {
    for (int i = 0; i < state_size; ++i)
      if (!std::isfinite(state[i]) || state[i] < state_low || state[i] > state_high) return false;
    for (int i = 0; i < 3; ++i) {
      const double p = state[position_fields[i]];
      if (p < ws_low[i] - tolerance || p > ws_high[i] + tolerance) return false;
    }
    last_gripper = state[gripper_field] > 0 ? 1.0f : -1.0f;
    return true;
  }
  void fallback(Action& a) const { a.command = {0.0f, 0.0f, 0.0f, last_gripper}; }

  int check_output(const float* state, const float* out, Action& a) const {
    for (int i = 0; i < 4; ++i)
      if (out[i] < low_action || out[i] > high_action) {
        fallback(a);
        return kOutOfBoundsOutput;
      }
    for (int i = 0; i < 4; ++i) a.command[i] = out[i];
    int cause = kNone;
    for (int i = 0; i < 3; ++i) {
      const double position = state[position_fields[i]];
      const double target = position + double(out[i]) * max_step;
      const double inside = std::min(ws_high[i], std::max(ws_low[i], target));
      if (inside != target) {
        a.command[i] = float((inside - position) / max_step);
        cause = kWorkspaceLimit;
      }
    }
    return cause;
  }
};

// ------------------------------------------------------------------------------------------------- watchdog
// One inference thread per model. submit() hands it the (already filled) input buffers; wait_until() returns
// false at the deadline with the inference still running, which then holds the buffers until it ends (busy).
class InferenceWorker {
 public:
  InferenceWorker(Network* network, double late_s, void (*count_allocations)(int))
      : network(network), late_s(late_s), count_allocations(count_allocations), thread([this] { loop(); }) {}
  ~InferenceWorker() {
    {
      std::lock_guard<std::mutex> lock(m);
      quit = true;
    }
    job_cv.notify_all();
    thread.join();
  }
  bool busy() {
    std::lock_guard<std::mutex> lock(m);
    return running;
  }
  void submit(int fault) {
    {
      std::lock_guard<std::mutex> lock(m);
      running = true;
      pending = true;
      armed = fault;
      failed = false;
    }
    job_cv.notify_one();
  }
  bool wait_until(Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(m);
    return done_cv.wait_until(lock, deadline, [this] { return !running; });
  }
  void wait() {
    std::unique_lock<std::mutex> lock(m);
    done_cv.wait(lock, [this] { return !running; });
  }
  bool prioritise(const sched_param& param) { return pthread_setschedparam(thread.native_handle(), SCHED_FIFO, &param) == 0; }
  bool pin(const cpu_set_t& set) { return pthread_setaffinity_np(thread.native_handle(), sizeof(set), &set) == 0; }
  bool failed = false;
  char error[200] = "";

 private:
  Network* network;
  double late_s;
  void (*count_allocations)(int);
  std::mutex m;
  std::condition_variable job_cv, done_cv;
  bool running = false, pending = false, quit = false;
  int armed = kNoFault;
  std::thread thread;

  void loop() {
    if (count_allocations) count_allocations(1);
    std::unique_lock<std::mutex> lock(m);
    for (;;) {
      job_cv.wait(lock, [this] { return pending || quit; });
      if (quit) return;
      pending = false;
      const int fault = armed;
      lock.unlock();
      bool bad = false;
      if (fault == kLateInference) std::this_thread::sleep_for(std::chrono::duration<double>(late_s));
      if (fault == kModelException) {
        bad = true;
        std::snprintf(error, sizeof(error), "injected fault: the model raised");
      } else {
        try {
          network->run();
        } catch (const std::exception& e) {
          bad = true;
          std::snprintf(error, sizeof(error), "%s", e.what());
        }
      }
      if (fault == kNanOutput)
        for (auto& out : network->outputs) std::fill(out.begin(), out.end(), std::numeric_limits<float>::quiet_NaN());
      lock.lock();
      failed = bad;
      running = false;
      done_cv.notify_all();
    }
  }
};

}  // namespace controller
