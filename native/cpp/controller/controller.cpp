// embodied_controller: the design document's EmbodiedAIController, for real. It closes the loop on the simulated
// robots (the grid world's scan, the MuJoCo tabletop's camera and joint state) with the exported navigation and
// manipulation models, through the safety guard, on absolute deadlines, and writes one JSON report.
// The C++ twin of embodied_lib.deploy (loop.py, guard.py, faults.py, missions.py); see --help.
#include <dlfcn.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <random>

#include "guard.hpp"
#include "world.hpp"

namespace controller {
namespace {

constexpr const char* kUsage = R"(usage: embodied_controller COMMAND --exports DIR --episodes DIR [options]

Commands
  evaluate      play every held-out map and scene once in closed loop (free running), report success
  run           both models on their simulators at --rate-hz for --ticks ticks, episodes back to back
  check-world   write the grid observations and camera frames of the exported episodes (tests compare
                them with Python's), no models
  missions      read commands (one per line, --commands FILE), decide each with the HRI text pipeline
                (the Rust pipeline through its C ABI) and carry out go_to / pick / stop

Options
  --exports DIR            export root: navigation/, manipulation/ (and command_pipeline/ for missions)
  --episodes DIR           maps.json, scenes.json, tabletop.xml (embodied_lib.deploy.native_controller)
  --runtime NAME           executorch (default) | onnxruntime | executorch_int8 | onnxruntime_int8
  --models LIST            navigation,manipulation (default both)
  --maps N / --scenes N    episodes to play (evaluate; default all in the files)
  --ticks N                ticks to run (run; default 200)
  --rate-hz HZ             loop rate (default 20)
  --infer-budget F         share of the period the watchdog gives inference (default 0.6)
  --free-running           ticks back to back (deadlines still judged)
  --replay N               record N readings per model first, then run on them: the controller's compute
                           without rendering or physics (rate search, soak)
  --faults LIST            inject faults: model_exception,nan_output,out_of_bounds_output,late_inference,
                           dropped_frame,stale_frame (or all)
  --fault-probability P    chance of a fault per model and tick (default 0.2)
  --fault-models LIST      the models whose channels get faults (default: every model)
  --fault-seed N           seed of the fault draws (default 0)
  --corrupt-model NAME     flip one byte of that model's file before start-up (it must fall back every tick)
  --threads LIST           inference threads of each model, in --models order, or one count for all (default 1).
                           ExecuTorch: a model on 1 runs without the shared pool, on its worker alone; the models
                           on more share one pool, so they take the same count (e.g. 1,2: navigation alone,
                           manipulation on a pool of two). ONNX Runtime: each session's intra-op threads
  --cpu K                  pin the controller's threads to CPU K (after start-up; the camera is its own process)
  --cpus LIST              each model's inference worker on its own CPU, in --models order (e.g. 0,1); the loop's
                           thread stays on --cpu (default: the first of LIST). The channels then run side by side
  --priority N             SCHED_FIFO priority N (1-99) for the controller's threads (root or CAP_SYS_NICE)
  --commands FILE          missions: one command per line
  --hri-library PATH       missions: libhri_pipeline.so (default: native/rust/target/release beside --exports' repo)
  --out FILE               write the JSON report there (default: stdout)
  --stall TICK:PERIODS     hold the loop PERIODS periods at tick TICK, after its work (the overrun count's test)
  --baseline-seconds S     first measure the machine itself for S seconds, as cyclictest does: the same thread
                           sleeping to absolute releases at the same period with no work (wake-up latency)
  --lock-memory            after start-up and warm-up, mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) and the
                           loop's stack pre-faulted: the pages the loop uses stay resident (root, CAP_IPC_LOCK or
                           RLIMIT_MEMLOCK). ONFAULT: the libraries' untouched pages are not read in and locked
  --cpu-dma-latency US     hold a PM QoS request on /dev/cpu_dma_latency for the run, as cyclictest does (its
                           default is 0): no CPU enters an idle state that takes longer than US microseconds to
                           leave. On a VM with the haltpoll idle driver, 0 keeps the vCPU polling between ticks
                           instead of halting to the host (root)
  --progress               a progress line on stderr
  --help                   this text
Errors print one line "error: ..." and exit 1; usage errors exit 2.
)";

struct Options {
  std::string command, exports, episodes, runtime = "executorch", out, corrupt, commands, hri_library;
  std::vector<std::string> models{"navigation", "manipulation"};
  std::vector<std::string> fault_models;  // empty: faults in every model's channel
  std::vector<int> cpus;                  // --cpus: one per model's worker
  std::vector<long> threads{1};           // --threads: one per model, or one for all
  long maps = -1, scenes = -1, ticks = 200, replay = 0, fault_seed = 0, cpu = -1, priority = 0, stall_tick = -1,
       dma_latency_us = -1;
  double rate_hz = 20.0, infer_budget = 0.6, fault_probability = 0.2, stall_periods = 0.0, baseline_seconds = 0.0;
  bool free_running = false, progress = false, lock_memory = false;
  std::vector<int> faults;
};

// The threads model `i` (in --models order) runs on.
long threads_of(const Options& o, size_t i) { return o.threads.size() == 1 ? o.threads[0] : o.threads[i]; }

// ExecuTorch's shared pool: the one count above 1 among the models' (1 if none, -1 if they differ).
long pool_threads(const Options& o) {
  long pool = 1;
  for (size_t i = 0; i < o.models.size(); ++i) {
    const long n = threads_of(o, i);
    if (n > 1 && pool > 1 && n != pool) return -1;
    if (n > 1) pool = n;
  }
  return pool;
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "embodied_controller: error: %s (see --help)\n", message.c_str());
  std::exit(2);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    const std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

long to_long(const std::string& flag, const std::string& v, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end || errno || x < lo || x > hi)
    usage_error(flag + " takes an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'");
  return x;
}

double to_double(const std::string& flag, const std::string& v, double lo, double hi) {
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !std::isfinite(x) || x < lo || x > hi)
    usage_error(flag + " takes a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'");
  return x;
}

Options parse(int argc, char** argv) {
  Options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
  if (args.empty()) usage_error("no command");
  o.command = args[0];
  if (o.command != "evaluate" && o.command != "run" && o.command != "check-world" && o.command != "missions")
    usage_error("unknown command '" + o.command + "'");
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) usage_error(a + " needs a value");
      return args[++i];
    };
    if (a == "--exports") o.exports = value();
    else if (a == "--episodes") o.episodes = value();
    else if (a == "--runtime") {
      o.runtime = value();
      if (!format_of(o.runtime)) usage_error("unknown runtime '" + o.runtime + "'");
    } else if (a == "--models") {
      o.models = split(value());
      for (const auto& m : o.models)
        if (m != "navigation" && m != "manipulation") usage_error("unknown model '" + m + "'");
      if (o.models.empty()) usage_error("--models needs navigation and/or manipulation");
    } else if (a == "--maps") o.maps = to_long(a, value(), 1, 1000000);
    else if (a == "--scenes") o.scenes = to_long(a, value(), 1, 1000000);
    else if (a == "--ticks") o.ticks = to_long(a, value(), 1, 100000000);
    else if (a == "--rate-hz") o.rate_hz = to_double(a, value(), 0.1, 100000);
    else if (a == "--infer-budget") o.infer_budget = to_double(a, value(), 0.01, 1.0);
    else if (a == "--free-running") o.free_running = true;
    else if (a == "--replay") o.replay = to_long(a, value(), 1, 100000);
    else if (a == "--faults") {
      std::string v = value();
      if (v == "all") v = "model_exception,nan_output,out_of_bounds_output,late_inference,dropped_frame,stale_frame";
      for (const auto& k : split(v)) {
        const int f = fault_from_name(k);
        if (f < 0) usage_error("unknown fault kind '" + k + "'");
        o.faults.push_back(f);
      }
    } else if (a == "--fault-probability") o.fault_probability = to_double(a, value(), 0.0, 1.0);
    else if (a == "--fault-models") {
      o.fault_models = split(value());
      for (const auto& m : o.fault_models)
        if (m != "navigation" && m != "manipulation") usage_error("unknown model '" + m + "' in --fault-models");
    }
    else if (a == "--fault-seed") o.fault_seed = to_long(a, value(), 0, 1L << 40);
    else if (a == "--corrupt-model") {
      o.corrupt = value();
      if (o.corrupt != "navigation" && o.corrupt != "manipulation") usage_error("--corrupt-model takes navigation or manipulation");
    } else if (a == "--threads") {
      o.threads.clear();
      for (const auto& k : split(value())) o.threads.push_back(to_long(a, k, 1, 256));
    }
    else if (a == "--cpu") o.cpu = to_long(a, value(), 0, 4095);
    else if (a == "--cpus") {
      for (const auto& k : split(value())) o.cpus.push_back(int(to_long(a, k, 0, 4095)));
    }
    else if (a == "--priority") o.priority = to_long(a, value(), 1, 99);
    else if (a == "--commands") o.commands = value();
    else if (a == "--hri-library") o.hri_library = value();
    else if (a == "--out") o.out = value();
    else if (a == "--stall") {
      const std::string v = value();
      const size_t colon = v.find(':');
      if (colon == std::string::npos) usage_error("--stall takes TICK:PERIODS, got '" + v + "'");
      o.stall_tick = to_long(a, v.substr(0, colon), 0, 100000000);
      o.stall_periods = to_double(a, v.substr(colon + 1), 0.0, 1000.0);
    } else if (a == "--baseline-seconds") o.baseline_seconds = to_double(a, value(), 0.0, 3600.0);
    else if (a == "--lock-memory") o.lock_memory = true;
    else if (a == "--cpu-dma-latency") o.dma_latency_us = to_long(a, value(), 0, 1000000);
    else if (a == "--progress") o.progress = true;
    else usage_error("unknown option '" + a + "'");
  }
  if (o.exports.empty()) usage_error("--exports is required");
  if (o.episodes.empty()) usage_error("--episodes is required");
  if (o.command == "missions" && o.commands.empty()) usage_error("missions needs --commands FILE");
  if (!o.cpus.empty() && o.cpus.size() != o.models.size())
    usage_error("--cpus takes one CPU per model (" + std::to_string(o.models.size()) + "), got " + std::to_string(o.cpus.size()));
  if (o.threads.size() != 1 && o.threads.size() != o.models.size())
    usage_error("--threads takes one count, or one per model (" + std::to_string(o.models.size()) + "), got " +
                std::to_string(o.threads.size()));
  if (o.runtime.rfind("executorch", 0) == 0 && pool_threads(o) < 0)
    usage_error("--threads: ExecuTorch has one shared pool, so the models on more than one thread take the same count");
  return o;
}

// --------------------------------------------------------------------------------------------- helpers
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Sleep to an absolute time on CLOCK_MONOTONIC (steady_clock's clock), as cyclictest and realtime loops do:
// clock_nanosleep with TIMER_ABSTIME, again after a signal, so the wake-up is judged against the release itself.
void sleep_until(Clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  timespec at{};
  at.tv_sec = time_t(ns / 1000000000), at.tv_nsec = long(ns % 1000000000);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr) == EINTR) {
  }
}

// Wake-up latency (actual start minus planned release) the way cyclictest reports it: min / mean / p99 / max in
// microseconds and a histogram of 10 us bins up to 1 ms (overflow: the count above it).
json wakeup_latency_us(const std::vector<double>& late_s) {
  if (late_s.empty()) return nullptr;
  std::vector<double> us(late_s.size());
  for (size_t i = 0; i < us.size(); ++i) us[i] = late_s[i] * 1e6;
  std::sort(us.begin(), us.end());
  const double mean = std::accumulate(us.begin(), us.end(), 0.0) / double(us.size());
  const size_t p99 = std::min(us.size() - 1, size_t(std::ceil(0.99 * double(us.size()))) - 1);
  constexpr int kBins = 100;
  constexpr double kBinUs = 10.0;
  std::vector<long> counts(kBins, 0);
  long overflow = 0;
  for (double x : us) {
    const long bin = long(std::floor(std::max(0.0, x) / kBinUs));
    if (bin < kBins) ++counts[size_t(bin)]; else ++overflow;
  }
  auto r = [](double x) { return std::round(x * 10) / 10; };
  return {{"samples", us.size()}, {"min", r(us.front())}, {"mean", r(mean)}, {"p99", r(us[p99])}, {"max", r(us.back())},
          {"histogram", {{"bin_us", kBinUs}, {"counts", counts}, {"overflow", overflow}}}};
}

// The machine's own wake-up latency at this period: a tight loop of absolute sleeps with no work (cyclictest).
json machine_baseline(double period, double seconds_total) {
  const auto period_d = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(period));
  const long wakes = std::max(1L, long(seconds_total / period));
  std::vector<double> late(size_t(wakes), 0.0);
  auto release = Clock::now() + period_d;
  for (long i = 0; i < wakes; ++i, release += period_d) {
    sleep_until(release);
    late[size_t(i)] = seconds(Clock::now() - release);
  }
  return {{"period_ms", period * 1e3}, {"seconds", seconds_total}, {"wakeup_latency_us", wakeup_latency_us(late)}};
}

// Touch this much of the calling thread's stack so that its pages are resident (and locked, after mlockall) before
// the loop runs: the ROS 2 real-time demos' stack prefault.
void prefault_stack() {
  constexpr size_t kBytes = 256 * 1024;
  volatile unsigned char stack[kBytes];
  for (size_t i = 0; i < kBytes; i += 4096) stack[i] = 0;
}

// --cpu-dma-latency: a PM QoS request that lasts while the file stays open (cyclictest's latency target). The
// kernel keeps every CPU out of idle states whose exit latency exceeds it.
int hold_cpu_dma_latency(long us) {
  const int fd = open("/dev/cpu_dma_latency", O_WRONLY | O_CLOEXEC);
  const int32_t value = int32_t(us);
  if (fd < 0 || write(fd, &value, sizeof(value)) != ssize_t(sizeof(value))) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) close(fd);
    throw std::runtime_error("cannot set /dev/cpu_dma_latency (" + why + "; needs root; run without --cpu-dma-latency)");
  }
  return fd;  // left open until the process exits: closing it ends the request
}

// Page faults and context switches of the whole process (the loop, the inference workers; not the camera's).
struct Usage {
  long minor = 0, major = 0, voluntary = 0, involuntary = 0;
  static Usage now() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return {u.ru_minflt, u.ru_majflt, u.ru_nvcsw, u.ru_nivcsw};
  }
};

// Time the hypervisor ran something else while this VM's vCPUs wanted to run (/proc/stat's steal, all CPUs), in
// ms; -1 where there is no such line. Read outside the loop (a file read allocates).
double host_steal_ms() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  long long user, nice, system, idle, iowait, irq, softirq, steal;
  if (!(stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) || cpu != "cpu") return -1;
  return double(steal) * 1000.0 / double(sysconf(_SC_CLK_TCK));
}

double rss_mb() {  // resident set now, from /proc/self/statm
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return double(resident) * double(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

json percentiles_ms(std::vector<double> v) {  // the nearest-rank percentiles of loop.py's percentiles_ms (NumPy linear)
  if (v.empty()) return {{"p50", nullptr}, {"p99", nullptr}, {"max", nullptr}};
  std::sort(v.begin(), v.end());
  auto q = [&](double p) {
    const double pos = p / 100.0 * double(v.size() - 1);
    const size_t lo = size_t(pos);
    const double frac = pos - double(lo);
    const double x = lo + 1 < v.size() ? v[lo] + (v[lo + 1] - v[lo]) * frac : v[lo];
    return std::round(x * 1e3 * 1e3) / 1e3;
  };
  return {{"p50", q(50)}, {"p99", q(99)}, {"max", std::round(v.back() * 1e6) / 1e3}};
}

json read_json(const std::string& path, const char* what) {
  const std::vector<char> bytes = runner::read_file(path, what);
  try {
    return json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    throw std::runtime_error(path + " is not valid JSON: " + e.what());
  }
}

// The counting allocator (libembodied_alloc_counter.so, LD_PRELOAD): present only in the allocation check.
struct AllocationCounter {
  void (*counting)(int) = nullptr;
  long (*total)() = nullptr;
  AllocationCounter() {
    counting = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "embodied_alloc_counting"));
    total = reinterpret_cast<long (*)()>(dlsym(RTLD_DEFAULT, "embodied_alloc_total"));
    if (!counting || !total) counting = nullptr, total = nullptr;
  }
  void on(bool yes) const {
    if (counting) counting(yes ? 1 : 0);
  }
  long count() const { return total ? total() : -1; }
};

// A byte of the model file flipped (the one open_network would load), in a copy: the corrupt-model fault at start-up.
std::string corrupted_copy(const std::string& export_dir, const json& manifest, const std::string& runtime) {
  std::vector<char> bytes = runner::read_file(export_dir + "/" + model_file(export_dir, manifest, runtime), "model file");
  bytes[bytes.size() / 2] ^= char(0xFF);
  char path[] = "/tmp/embodied-corrupt-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) throw std::runtime_error("cannot create a temporary file for --corrupt-model");
  const bool ok = write(fd, bytes.data(), bytes.size()) == ssize_t(bytes.size());
  close(fd);
  if (!ok) throw std::runtime_error("cannot write the corrupted model copy");
  return path;
}

// --------------------------------------------------------------------------------------------- channels
struct EpisodeResult {
  int seed = 0, ticks = 0, moves = 0;
  bool success = false;
  double lift = 0.0;
};

struct Channel {
  std::string name;
  bool navigation = false;
  json manifest;
  std::unique_ptr<Network> network;
  std::string startup_error, file;  // file: the model file it runs (model_file), for the report
  std::unique_ptr<InferenceWorker> worker;
  Clock::time_point submitted;  // when this tick's inputs went to the worker
  std::unique_ptr<NavigationRules> nav_rules;
  std::unique_ptr<ManipulationRules> man_rules;
  world::GridWorld* grid = nullptr;
  world::Tabletop* table = nullptr;
  // sensor buffers (what the robot's sensors deliver this tick)
  std::vector<float> observation;  // grid scan, or robot state
  std::vector<uint8_t> image;      // camera frame (manipulation)
  // replay (--replay): recorded readings
  std::vector<std::vector<float>> replay_observations;
  std::vector<std::vector<uint8_t>> replay_images;
  size_t replay_next = 0;
  // episodes
  size_t episode = 0, episode_limit = 0;
  bool cycle = false, finished = false;
  int episode_ticks = 0, max_ticks = 0;
  std::vector<EpisodeResult> results;
  // guard state
  uint64_t seq = 0, last_seq = 0;
  bool has_last = false;
  Reading previous;
  double last_render_s = 0.0;
  // faults
  std::mt19937_64 rng;
  std::vector<int> fault_kinds;
  double fault_probability = 0.0;
  // counts
  std::array<long, kCauseCount> interventions{};
  std::array<std::array<long, 3>, kFaultCount> faults{};  // injected, fell back in the tick, cause as expected
  std::array<long, kFaultCount> unhandled{};
  // ticks this channel had no fault of its own while another channel's model was late (an injected late
  // inference, or a deadline), and how many of them still ended in a timing fallback here (deadline or busy):
  // 0 when the channels do not wait for each other
  long beside_late = 0, beside_late_timing_fallbacks = 0;
  long actuations = 0;  // ticks on which the robot moved (a move, or a gripper step with dx, dy or dz)

  bool replaying() const { return !replay_observations.empty(); }
  bool done() const { return navigation ? grid->done : table->done; }

  int draw_fault() {
    if (fault_kinds.empty()) return kNoFault;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    if (u(rng) >= fault_probability) return kNoFault;
    return fault_kinds[std::uniform_int_distribution<size_t>(0, fault_kinds.size() - 1)(rng)];
  }

  void start_episode() {
    if (replaying()) return;
    if (!cycle && episode >= episode_limit) {
      finished = true;
      return;
    }
    if (navigation) grid->reset(episode); else table->reset(episode);
    ++episode;
    episode_ticks = 0;
  }

  void fallback(Action& a) const {
    if (navigation) nav_rules->fallback(a); else man_rules->fallback(a);
  }

  // The model's input buffers from the sensor buffers: the scan as is; the frame as float CHW / 255 (model.py's
  // frame_to_input, the float32 division NumPy does) and the state.
  void fill_inputs() {
    if (navigation) {
      std::memcpy(network->input(0), observation.data(), observation.size() * sizeof(float));
      return;
    }
    static const std::array<float, 256> scaled = [] {  // v / 255 in float32, as NumPy divides: a table is 2x faster
      std::array<float, 256> t{};
      for (int v = 0; v < 256; ++v) t[v] = float(v) / 255.0f;
      return t;
    }();
    const size_t pixels = size_t(man_rules->height) * man_rules->width;
    const int channels = man_rules->channels;
    float* chw = network->input(0);
    const uint8_t* hwc = image.data();
    for (int k = 0; k < channels; ++k) {
      float* plane = chw + k * pixels;
      for (size_t i = 0; i < pixels; ++i) plane[i] = scaled[hwc[i * channels + k]];
    }
    std::memcpy(network->input(1), observation.data(), observation.size() * sizeof(float));
  }

  // The model's own action from its outputs (argmax move, or the action vector), without the guard.
  void raw_action(Action& a) const {
    const float* out = network->output(0);
    if (navigation) {
      const size_t n = network->outputs[0].size();
      a.move = int(std::max_element(out, out + n) - out);
    } else {
      for (int i = 0; i < 4; ++i) a.command[i] = out[i];
    }
  }
};

// The guard's act (embodied_lib.deploy.guard.Guard.act), checks in the same order, in two halves so that every
// channel's model is started before any is waited for: guard_start runs the checks before the model and hands the
// model its inputs on the channel's own worker (false: the step is already decided, a fallback); guard_finish waits
// for that worker until the channel's deadline and checks the outputs. A late model spends only its own channel's
// deadline.
bool guard_start(Channel& ch, const Reading& reading, Clock::time_point tick_started, int fault, Step& step) {
  step = Step{};
  ch.fallback(step.action);
  if (!reading.present) return step.cause = kMissingSensor, false;
  if (ch.has_last && reading.seq <= ch.last_seq) return step.cause = kStaleSensor, false;
  if (reading.stamp < tick_started) return step.cause = kStaleSensor, false;
  ch.last_seq = reading.seq, ch.has_last = true;
  const bool input_ok = ch.navigation ? ch.nav_rules->input_ok(ch.observation.data()) : ch.man_rules->input_ok(ch.observation.data());
  ch.fallback(step.action);  // input_ok may have updated the gripper the hold keeps
  if (!input_ok) return step.cause = kBadInput, false;
  if (!ch.network) return step.cause = kModelUnavailable, false;
  if (ch.worker->busy()) return step.cause = kBusy, false;
  ch.submitted = Clock::now();
  ch.fill_inputs();
  ch.worker->submit(fault == kModelException || fault == kNanOutput || fault == kLateInference ? fault : kNoFault);
  return true;
}

void guard_finish(Channel& ch, Clock::time_point deadline, int fault, Step& step) {
  const bool in_time = ch.worker->wait_until(deadline);
  step.infer_s = seconds(Clock::now() - ch.submitted);
  if (!in_time) {
    step.cause = kDeadline;
    return;
  }
  if (ch.worker->failed) {
    step.cause = kModelError, step.detail = ch.worker->error;
    return;
  }
  for (const auto& out : ch.network->outputs)
    for (float v : out)
      if (!std::isfinite(v)) {
        step.cause = kNonFiniteOutput;
        return;
      }
  const float* out = ch.network->output(0);
  if (ch.navigation) {
    Action raw;
    ch.raw_action(raw);
    if (fault == kOutOfBounds) raw.move = 99;
    step.cause = ch.nav_rules->check_output(ch.observation.data(), out, raw.move, step.action);
  } else {
    float injected[4] = {5.0f, 5.0f, 5.0f, 5.0f};
    step.cause = ch.man_rules->check_output(ch.observation.data(), fault == kOutOfBounds ? injected : out, step.action);
  }
}

Step guard_act(Channel& ch, const Reading& reading, Clock::time_point tick_started, Clock::time_point deadline, int fault) {
  Step step;
  if (guard_start(ch, reading, tick_started, fault, step)) guard_finish(ch, deadline, fault, step);
  return step;
}

// An intervention kept verbatim for the report (loop.py's intervention_examples), in fixed storage.
struct Example {
  long tick = 0;
  int channel = 0, cause = kNone;
  char detail[200] = "";
};
constexpr size_t kMaxExamples = 200;

struct Controller {
  Options opt;
  std::vector<Example> examples;
  AllocationCounter allocations;
  std::unique_ptr<world::GridWorld> grid;
  std::unique_ptr<world::Tabletop> table;
  std::vector<Channel> channels;

  explicit Controller(Options o) : opt(std::move(o)) {
    channels.reserve(2);
    for (const auto& model : opt.models) open_channel(model);
    if (!opt.cpus.empty()) pin_each(opt.cpu >= 0 ? int(opt.cpu) : opt.cpus[0], opt.cpus);
    else if (opt.cpu >= 0) pin(int(opt.cpu));
    if (opt.priority > 0) prioritise(int(opt.priority));
  }

  // --priority: SCHED_FIFO for the controller's threads, as ros2_control's realtime_tools does: the loop and its
  // inference are not preempted by ordinary processes. Needs root or CAP_SYS_NICE.
  void prioritise(int priority) {
    sched_param param{};
    param.sched_priority = priority;
    bool ok = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param) == 0;
    for (auto& ch : channels)
      if (ch.worker) ok = ok && ch.worker->prioritise(param);
    if (!ok) throw std::runtime_error("cannot set SCHED_FIFO priority " + std::to_string(priority) +
                                     " (needs root or CAP_SYS_NICE; run without --priority)");
  }

  // --cpu: the controller's threads (this loop and the inference workers) on one core, after start-up. The
  // simulated camera renders in its own process (world::CameraProcess), which stays where it was: on a robot the
  // camera is not the controller's core either.
  void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    bool ok = pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
    for (auto& ch : channels)
      if (ch.worker) ok = ok && ch.worker->pin(set);
    if (!ok) throw std::runtime_error("cannot pin to CPU " + std::to_string(cpu) + " (is there such a CPU?)");
  }

  // --cpus: the loop's thread on `loop_cpu`, each channel's inference worker on its own CPU, so that with two
  // cores the two models run at the same time instead of taking turns on one.
  void pin_each(int loop_cpu, const std::vector<int>& cpus) {
    auto one = [](int cpu) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      return set;
    };
    cpu_set_t loop_set = one(loop_cpu);
    bool ok = pthread_setaffinity_np(pthread_self(), sizeof(loop_set), &loop_set) == 0;
    for (size_t i = 0; i < channels.size(); ++i)
      if (channels[i].worker) ok = ok && channels[i].worker->pin(one(cpus[i]));
    if (!ok) throw std::runtime_error("cannot pin to the CPUs of --cpus (are there such CPUs?)");
  }

  void open_channel(const std::string& model) {
    Channel ch;
    ch.name = model;
    ch.navigation = model == "navigation";
    const std::string dir = opt.exports + "/" + model;
    ch.manifest = runner::read_manifest(dir + "/manifest.json");  // without a manifest there are no rules: an error
    if (ch.navigation) {
      ch.nav_rules = std::make_unique<NavigationRules>(ch.manifest);
      grid = std::make_unique<world::GridWorld>(read_json(opt.episodes + "/maps.json", "maps.json"),
                                                ch.nav_rules->obstacle_channel, ch.nav_rules->n);
      ch.grid = grid.get();
      ch.observation.assign(size_t(grid->observation_size()), 0.0f);
      if (int(ch.observation.size()) != ch.nav_rules->size()) throw std::runtime_error("maps.json and the navigation model disagree on the observation size");
      ch.max_ticks = grid->max_ticks;
      ch.episode_limit = opt.maps > 0 ? size_t(opt.maps) : grid->maps.size();
    } else {
      ch.man_rules = std::make_unique<ManipulationRules>(ch.manifest);
      table = std::make_unique<world::Tabletop>(read_json(opt.episodes + "/scenes.json", "scenes.json"), opt.episodes, true);
      ch.table = table.get();
      if (table->image_size != ch.man_rules->height || table->image_size != ch.man_rules->width || ch.man_rules->channels != 3)
        throw std::runtime_error("the camera renders " + std::to_string(table->image_size) + " px; the manipulation model takes another size");
      ch.observation.assign(size_t(ch.man_rules->state_size), 0.0f);
      ch.image.assign(table->frame_bytes(), 0);
      ch.max_ticks = table->max_steps;
      ch.episode_limit = opt.scenes > 0 ? size_t(opt.scenes) : table->seeds.size();
    }
    ch.cycle = opt.command == "run";
    std::string replaced;
    try {
      ch.file = model_file(dir, ch.manifest, opt.runtime);
      if (opt.corrupt == model) replaced = corrupted_copy(dir, ch.manifest, opt.runtime);
      ch.network = open_network(dir, ch.manifest, opt.runtime, int(threads_of(opt, channels.size())), replaced);
    } catch (const std::exception& e) {  // the robot stays safe: every tick falls back, with the reason
      ch.startup_error = e.what();
      if (!replaced.empty()) ch.startup_error = "--corrupt-model " + model + ": " + ch.startup_error;
    }
    if (!replaced.empty()) std::remove(replaced.c_str());
    const double period = 1.0 / opt.rate_hz;
    const double late_s = period * (opt.infer_budget + (1 - opt.infer_budget) / 4);  // controller.late_seconds
    if (ch.network) ch.worker = std::make_unique<InferenceWorker>(ch.network.get(), late_s, allocations.counting);
    ch.rng.seed(uint64_t(opt.fault_seed) + channels.size());
    if (opt.fault_models.empty() || std::find(opt.fault_models.begin(), opt.fault_models.end(), model) != opt.fault_models.end())
      ch.fault_kinds = opt.faults;
    ch.fault_probability = opt.fault_probability;
    channels.push_back(std::move(ch));
  }

  // What the sensors deliver this tick, into the channel's sensor buffers; rendering timed apart.
  Reading sense(Channel& ch) {
    ch.last_render_s = 0.0;
    if (ch.replaying()) {
      const size_t i = ch.replay_next++ % ch.replay_observations.size();
      std::memcpy(ch.observation.data(), ch.replay_observations[i].data(), ch.observation.size() * sizeof(float));
      if (!ch.navigation) std::memcpy(ch.image.data(), ch.replay_images[i].data(), ch.image.size());
    } else if (ch.navigation) {
      ch.grid->observe(ch.observation.data());
    } else {
      allocations.on(false);  // the camera and the simulator are the robot's, not the controller's
      const auto t = Clock::now();
      ch.table->render(ch.image.data());
      ch.last_render_s = seconds(Clock::now() - t);
      ch.table->read_state(ch.observation.data());
      allocations.on(true);
    }
    return Reading{true, ++ch.seq, Clock::now()};
  }

  void apply(Channel& ch, const Action& a) {
    if (ch.replaying()) return;
    allocations.on(false);
    if (ch.navigation) {
      if (a.move >= 0) ch.grid->step(a.move), ++ch.actuations;
    } else {
      ch.table->step(a.command.data());
      ch.actuations += a.command[0] != 0.0f || a.command[1] != 0.0f || a.command[2] != 0.0f;
    }
    allocations.on(true);
  }

  // Count a tick; an episode that ran out of ticks ends unsuccessful; a finished one is recorded, the next starts.
  // Returns the seconds spent resetting (excluded from compute).
  double tick_done(Channel& ch) {
    if (ch.replaying() || ch.finished) return 0.0;
    ++ch.episode_ticks;
    const bool out_of_ticks = ch.episode_ticks >= ch.max_ticks;
    if (!ch.done() && !out_of_ticks) return 0.0;
    EpisodeResult r;
    r.ticks = ch.episode_ticks;
    if (ch.navigation) {
      r.seed = ch.grid->maps[(ch.episode - 1) % ch.grid->maps.size()].seed;
      r.success = ch.grid->success, r.moves = ch.grid->moves;
    } else {
      r.seed = ch.table->seeds[(ch.episode - 1) % ch.table->seeds.size()];
      r.success = ch.table->success, r.lift = ch.table->lift;
    }
    if (ch.results.size() < ch.results.capacity()) ch.results.push_back(r);
    allocations.on(false);
    const auto t = Clock::now();
    ch.start_episode();
    const double s = seconds(Clock::now() - t);
    allocations.on(true);
    return s;
  }

  // --replay N: N readings per model recorded from the simulator under the model's own actions.
  void record_replay(long n) {
    for (auto& ch : channels) {
      if (!ch.network) throw std::runtime_error(ch.name + " did not load (" + ch.startup_error + "); --replay needs it");
      ch.start_episode();
      for (long i = 0; i < n; ++i) {
        sense(ch);
        ch.replay_observations.push_back(ch.observation);
        if (!ch.navigation) ch.replay_images.push_back(ch.image);
        ch.fill_inputs();
        ch.network->run();
        Action a;
        ch.raw_action(a);
        if (ch.navigation) ch.grid->step(a.move); else ch.table->step(a.command.data());
        if (ch.done()) ch.start_episode();
      }
    }
  }

  json run_loop() {
    const bool until_done = opt.command == "evaluate";
    if (opt.replay > 0) record_replay(opt.replay);
    size_t capacity = size_t(opt.ticks);
    for (auto& ch : channels) {
      ch.episode = 0;
      ch.finished = false;
      if (until_done) capacity = std::max(capacity, ch.episode_limit * size_t(ch.max_ticks));
      ch.results.reserve(until_done ? ch.episode_limit : size_t(opt.ticks) + 1);
      ch.start_episode();
      if (ch.network && !ch.finished) {  // warm-up: first runs plan memory and pack weights
        sense(ch);
        for (int i = 0; i < 3; ++i) {
          ch.fill_inputs();
          ch.worker->submit(kNoFault);
          ch.worker->wait();
        }
      }
    }
    const long limit = until_done ? long(capacity) : opt.ticks;
    const size_t nch = channels.size();
    const double idle = std::numeric_limits<double>::quiet_NaN();  // a channel whose episodes are over: not counted
    std::vector<double> sense_s(capacity * nch, idle), render_s(capacity * nch, idle), infer_s(capacity * nch, idle),
        act_s(capacity * nch, idle), e2e_s(capacity * nch, idle), compute_s(capacity), wall_s(capacity), late_s(capacity);
    std::vector<uint8_t> missed(capacity);
    std::vector<long> row_tick(capacity);
    examples.clear();
    examples.reserve(kMaxExamples);
    std::vector<Reading> readings(nch);
    std::vector<int> drawn(nch);
    std::vector<Step> steps(nch);
    std::vector<char> active(nch), waiting(nch);
    const double period = 1.0 / opt.rate_hz;
    const auto period_d = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(period));
    const auto budget_d = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(period * opt.infer_budget));
    if (opt.dma_latency_us >= 0) hold_cpu_dma_latency(opt.dma_latency_us);   // before the baseline: both run under it
    json baseline = nullptr;
    if (opt.baseline_seconds > 0 && !opt.free_running) baseline = machine_baseline(period, opt.baseline_seconds);
    // ONFAULT: lock what is resident now (the warmed-up models, buffers, code) and whatever faults in later,
    // without reading in and locking every page of every mapped library (measured, both models with the simulators:
    // 639 MB peak with MCL_CURRENT alone, dynamic-batch programs; 121.5 MB with ONFAULT and the batch-1 programs);
    // the loop's stack is touched here so that it is resident too.
    if (opt.lock_memory) {
      if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0)
        throw std::runtime_error(std::string("cannot lock memory (mlockall: ") + std::strerror(errno) +
                                 "; needs root, CAP_IPC_LOCK or a higher RLIMIT_MEMLOCK; run without --lock-memory)");
      prefault_stack();
    }
    const double rss_start = rss_mb();
    double rss_warm = rss_start;
    bool warming = true;
    const long warmed_at = std::min(1000L, limit / 10);
    long rows = 0, skipped = 0, tick = 0, missed_woke_late = 0, missed_work = 0;
    const double steal_start = host_steal_ms();
    allocations.on(true);
    const long allocations_start = allocations.count();
    const Usage usage_start = Usage::now();
    auto t0 = Clock::now();
    while (tick < limit) {
      bool all_finished = true;
      for (auto& ch : channels) all_finished = all_finished && ch.finished;
      if (until_done && all_finished) break;
      auto release = t0 + tick * period_d;
      if (!opt.free_running) {
        const auto now = Clock::now();
        if (now > release + period_d) {  // woke a whole period late: every passed release is lost
          const long behind = std::min(long(std::ceil(seconds(now - release) / period)), limit - tick);
          skipped += behind, tick += behind, missed_woke_late += behind;
          continue;
        }
        if (release > now) sleep_until(release);
      } else {
        release = Clock::now();
        t0 = release - tick * period_d;
      }
      const long row = rows++;
      row_tick[row] = tick;
      const auto started = Clock::now();
      late_s[row] = seconds(started - release);
      const auto deadline = started + budget_d;
      double excluded = 0.0;
      // every sensor, then every decision, then every action (loop.py: a late model in one channel must not
      // delay another's camera past the shared deadline)
      for (size_t i = 0; i < nch; ++i) {
        Channel& ch = channels[i];
        active[i] = !ch.finished;
        if (!active[i]) continue;
        const auto t = Clock::now();
        const Reading fresh = sense(ch);
        drawn[i] = ch.draw_fault();
        readings[i] = drawn[i] == kDroppedFrame ? Reading{} : drawn[i] == kStaleFrame ? ch.previous : fresh;
        ch.previous = fresh;
        render_s[row * nch + i] = ch.last_render_s;
        sense_s[row * nch + i] = seconds(Clock::now() - t) - ch.last_render_s;
        excluded += ch.last_render_s;
      }
      // every model started before any is waited for: each runs on its own worker, each waits to its own deadline
      for (size_t i = 0; i < nch; ++i)
        if (active[i]) waiting[i] = guard_start(channels[i], readings[i], started, drawn[i], steps[i]);
      for (size_t i = 0; i < nch; ++i) {
        if (!active[i]) continue;
        if (waiting[i]) guard_finish(channels[i], deadline, drawn[i], steps[i]);
        infer_s[row * nch + i] = steps[i].infer_s;  // 0 where a check before the model decided
      }
      for (size_t i = 0; i < nch; ++i) {
        if (!active[i] || drawn[i] != kNoFault) continue;
        bool other_late = false;
        for (size_t j = 0; j < nch; ++j)
          other_late |= j != i && active[j] && (drawn[j] == kLateInference || steps[j].cause == kDeadline);
        if (!other_late) continue;
        ++channels[i].beside_late;
        channels[i].beside_late_timing_fallbacks += steps[i].cause == kDeadline || steps[i].cause == kBusy;
      }
      for (size_t i = 0; i < nch; ++i) {
        if (!active[i]) continue;
        Channel& ch = channels[i];
        const auto t = Clock::now();
        apply(ch, steps[i].action);
        const auto applied = Clock::now();
        act_s[row * nch + i] = seconds(applied - t);
        e2e_s[row * nch + i] = seconds(applied - ch.previous.stamp);
        ++ch.interventions[steps[i].cause];
        if (steps[i].cause != kNone && examples.size() < kMaxExamples) {
          Example& e = examples.emplace_back();  // reserved before the loop: no allocation
          e.tick = tick, e.channel = int(i), e.cause = steps[i].cause;
          std::snprintf(e.detail, sizeof(e.detail), "%s", steps[i].detail);
        }
        if (drawn[i] != kNoFault) {
          auto& f = ch.faults[drawn[i]];
          ++f[0];
          f[1] += is_fallback(steps[i].cause);
          f[2] += steps[i].cause == expected_cause(drawn[i]);
          ch.unhandled[drawn[i]] += !is_fallback(steps[i].cause);
        }
        excluded += tick_done(ch);
      }
      if (tick == opt.stall_tick)
        std::this_thread::sleep_for(std::chrono::duration<double>(opt.stall_periods * period));
      const auto finished = Clock::now();
      wall_s[row] = seconds(finished - started);
      compute_s[row] = wall_s[row] - excluded;
      missed[row] = finished > release + period_d;
      ++tick;
      if (missed[row]) {
        long cost = 1;
        if (!opt.free_running) {
          // ros2_control's overrun: a tick that ends n periods after its release costs ceil(n) cycles (itself and
          // the releases that passed during it); the next tick waits for the next release on the grid
          const long passed = std::min(long(std::ceil(seconds(finished - release) / period)) - 1, limit - tick);
          skipped += passed, tick += passed, cost += passed;
        }
        // whose lateness it mostly was: the thread's wake-up (the machine's) or the tick's own work
        (late_s[row] > wall_s[row] ? missed_woke_late : missed_work) += cost;
      }
      if (warming && tick >= warmed_at) {  // >=: an overrun may skip past it
        warming = false;
        allocations.on(false);
        rss_warm = rss_mb();
        allocations.on(true);
      }
      if (opt.progress && tick % 1000 == 0) {
        allocations.on(false);
        std::fprintf(stderr, "\r%s: tick %ld / %ld", opt.command.c_str(), tick, limit);
        allocations.on(true);
      }
    }
    const long allocations_end = allocations.count();
    const Usage usage_end = Usage::now();
    allocations.on(false);
    const double steal_end = host_steal_ms();
    const double steal_ms = steal_start < 0 || steal_end < 0 ? -1 : steal_end - steal_start;  // -1: unreadable
    if (opt.progress) std::fprintf(stderr, "\n");
    for (auto& ch : channels)
      if (ch.worker) ch.worker->wait();  // a late inference still running ends before the report
    const double rss_end = rss_mb();
    json out = report(rows, skipped, sense_s, render_s, infer_s, act_s, e2e_s, compute_s, wall_s, late_s, missed, row_tick,
                      rss_start, rss_warm, rss_end, allocations_start, allocations_end);
    const double n = double(std::max(1L, rows));
    auto per_tick = [&](long x) { return std::round(double(x) / n * 1e4) / 1e4; };
    const Usage d{usage_end.minor - usage_start.minor, usage_end.major - usage_start.major,
                  usage_end.voluntary - usage_start.voluntary, usage_end.involuntary - usage_start.involuntary};
    out["rusage_in_loop"] = {{"minor_page_faults", d.minor}, {"major_page_faults", d.major},
                             {"voluntary_context_switches", d.voluntary}, {"involuntary_context_switches", d.involuntary},
                             {"per_tick", {{"minor_page_faults", per_tick(d.minor)}, {"major_page_faults", per_tick(d.major)},
                                           {"voluntary_context_switches", per_tick(d.voluntary)},
                                           {"involuntary_context_switches", per_tick(d.involuntary)}}}};
    out["wakeup_latency_us"] = opt.free_running ? json(nullptr)
                                                : wakeup_latency_us(std::vector<double>(late_s.begin(), late_s.begin() + rows));
    out["machine_baseline"] = baseline;
    // the misses told apart: releases lost while the loop's thread was not running (it woke late: on this VM the
    // host's doing, with its steal time beside) and ticks late mostly by their own work
    out["deadline_misses_by_cause"] = {{"woke_late", missed_woke_late}, {"own_work", missed_work}};
    out["host_steal_ms"] = steal_ms >= 0 ? json(std::round(steal_ms)) : json(nullptr);
    out["memory_locked"] = opt.lock_memory;
    out["cpu_dma_latency_us"] = opt.dma_latency_us >= 0 ? json(opt.dma_latency_us) : json(nullptr);
    return out;
  }

  json report(long rows, long skipped, const std::vector<double>& sense_s, const std::vector<double>& render_s,
              const std::vector<double>& infer_s, const std::vector<double>& act_s, const std::vector<double>& e2e_s,
              const std::vector<double>& compute_s, const std::vector<double>& wall_s, const std::vector<double>& late_s,
              const std::vector<uint8_t>& missed, const std::vector<long>& row_tick, double rss_start,
              double rss_warm, double rss_end,
              long allocations_start, long allocations_end) {
    const size_t nch = channels.size();
    long misses = skipped;
    for (long r = 0; r < rows; ++r) misses += missed[r];
    json chans = json::object();
    json totals = json::object();
    for (size_t i = 0; i < nch; ++i) {
      Channel& ch = channels[i];
      auto column = [&](const std::vector<double>& v) {
        std::vector<double> out;
        for (long r = 0; r < rows; ++r)
          if (!std::isnan(v[r * nch + i])) out.push_back(v[r * nch + i]);
        return out;
      };
      json interventions = json::object();
      for (int c = 1; c < kCauseCount; ++c)
        if (ch.interventions[c]) interventions[cause_name(c)] = ch.interventions[c];
      json faults = json::object();
      for (int f = 1; f < kFaultCount; ++f)
        if (ch.faults[f][0]) {
          faults[fault_name(f)] = {{"injected", ch.faults[f][0]}, {"fell_back_same_tick", ch.faults[f][1]},
                                   {"cause_as_expected", ch.faults[f][2]}};
          auto& t = totals[fault_name(f)];
          if (t.is_null()) t = {{"injected", 0}, {"fell_back_same_tick", 0}, {"cause_as_expected", 0}};
          t["injected"] = t["injected"].get<long>() + ch.faults[f][0];
          t["fell_back_same_tick"] = t["fell_back_same_tick"].get<long>() + ch.faults[f][1];
          t["cause_as_expected"] = t["cause_as_expected"].get<long>() + ch.faults[f][2];
        }
      json results = json::array();
      long successes = 0;
      for (const auto& r : ch.results) {
        successes += r.success;
        json row = {{"seed", r.seed}, {"success", r.success}, {"ticks", r.ticks}};
        if (ch.navigation) row["moves"] = r.moves; else row["lift_m"] = std::round(r.lift * 1e4) / 1e4;
        results.push_back(row);
      }
      chans[ch.name] = {
          {"episodes", ch.results.size()},
          {"success_rate", ch.results.empty() ? json(nullptr) : json(double(successes) / double(ch.results.size()))},
          {"sense_ms", percentiles_ms(column(sense_s))}, {"render_ms", percentiles_ms(column(render_s))},
          {"infer_ms", percentiles_ms(column(infer_s))}, {"act_ms", percentiles_ms(column(act_s))},
          {"end_to_end_ms", percentiles_ms(column(e2e_s))}, {"interventions", interventions}, {"faults", faults},
          {"actuations", ch.actuations},
          {"beside_a_late_model", {{"ticks", ch.beside_late}, {"timing_fallbacks", ch.beside_late_timing_fallbacks}}},
          {"guard_startup_error", ch.startup_error.empty() ? json(nullptr) : json(ch.startup_error)},
          {"model_file", ch.file.empty() ? json(nullptr) : json(ch.file)},
          {"results", results}};
    }
    std::vector<double> compute(compute_s.begin(), compute_s.begin() + rows), wall(wall_s.begin(), wall_s.begin() + rows),
        late(late_s.begin(), late_s.begin() + rows);
    long unhandled = 0;
    for (auto& ch : channels)
      for (long u : ch.unhandled) unhandled += u;
    auto timeline_ms = [](const std::vector<double>& v) {
      std::vector<double> out(v.begin(), v.begin() + std::min<size_t>(v.size(), 20000));
      for (auto& t : out) t = std::round(t * 1e6) / 1e3;
      return out;
    };
    auto mb = [](double x) { return std::round(x * 10) / 10; };
    json example_rows = json::array();
    for (const auto& e : examples)
      example_rows.push_back({{"tick", e.tick}, {"channel", channels[size_t(e.channel)].name},
                              {"cause", cause_name(e.cause)}, {"detail", e.detail}});
    return {{"controller", "C++ embodied_controller"}, {"command", opt.command}, {"runtime", opt.runtime},
            {"rate_hz", opt.rate_hz}, {"free_running", opt.free_running}, {"infer_budget", opt.infer_budget},
            {"replay", opt.replay}, {"threads", opt.threads}, {"cpu", opt.cpu}, {"cpus", opt.cpus}, {"priority", opt.priority},
            {"ticks", rows + skipped}, {"deadline_misses", misses},
            {"compute_ms", percentiles_ms(compute)}, {"wall_ms", percentiles_ms(wall)},
            {"start_late_ms", percentiles_ms(late)}, {"channels", chans}, {"fault_totals", totals},
            {"unhandled_faults", unhandled},
            {"rss_mb", {{"start", mb(rss_start)}, {"after_warm_up", mb(rss_warm)}, {"end", mb(rss_end)},
                        {"growth", mb(rss_end - rss_start)}, {"growth_after_warm_up", mb(rss_end - rss_warm)}}},
            {"peak_rss_mb", mb(runner::peak_rss_mb())},
            {"allocations_in_loop", allocations.total ? json(allocations_end - allocations_start) : json(nullptr)},
            {"intervention_examples", example_rows},
            {"timeline", {{"compute_ms", timeline_ms(compute)}, {"wall_ms", timeline_ms(wall)},
                          {"tick", std::vector<long>(row_tick.begin(), row_tick.begin() + std::min<long>(rows, 20000))}}}};
  }
};

// ---------------------------------------------------------------------------------------------- missions
// The HRI text pipeline of the Rust workspace (hri-pipeline's C ABI, libhri_command.so): the exported
// tokenizer.json read by the `tokenizers` library, command_pipeline.onnx run by ONNX Runtime, and the
// decision Python makes from the manifest's command schema.
class CommandPipeline {
 public:
  CommandPipeline(const std::string& library, const std::string& model) {
    Dl_info info;  // ort (load-dynamic) opens ONNX Runtime from ORT_DYLIB_PATH: the library this process runs
    if (!std::getenv("ORT_DYLIB_PATH") && dladdr(reinterpret_cast<void*>(&OrtGetApiBase), &info) && info.dli_fname)
      setenv("ORT_DYLIB_PATH", info.dli_fname, 0);
    handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle)
      throw std::runtime_error("cannot open the HRI pipeline library " + library + " (" + dlerror() +
                               "); build it with `make native` or pass --hri-library");
    open_fn = reinterpret_cast<void* (*)(const char*, char*, size_t)>(dlsym(handle, "hri_open"));
    decide_fn = reinterpret_cast<int (*)(void*, const char*, char*, size_t)>(dlsym(handle, "hri_decide"));
    close_fn = reinterpret_cast<void (*)(void*)>(dlsym(handle, "hri_close"));
    if (!open_fn || !decide_fn || !close_fn) throw std::runtime_error(library + " is not the HRI pipeline library");
    char error[1024] = "";
    pipeline = open_fn(model.c_str(), error, sizeof(error));
    if (!pipeline) throw std::runtime_error(std::string("cannot open the HRI pipeline: ") + error);
  }
  ~CommandPipeline() {
    if (pipeline) close_fn(pipeline);
    // the library stays loaded: ONNX Runtime's threads may outlive the handle
  }
  CommandPipeline(const CommandPipeline&) = delete;
  CommandPipeline& operator=(const CommandPipeline&) = delete;

  json decide(const std::string& text) {
    std::vector<char> out(1 << 16);
    if (decide_fn(pipeline, text.c_str(), out.data(), out.size()) != 0)
      throw std::runtime_error(std::string("the HRI pipeline failed on a command: ") + out.data());
    return json::parse(out.data());
  }

 private:
  void* handle = nullptr;
  void* pipeline = nullptr;
  void* (*open_fn)(const char*, char*, size_t) = nullptr;
  int (*decide_fn)(void*, const char*, char*, size_t) = nullptr;
  void (*close_fn)(void*) = nullptr;
};

std::string default_hri_library() {
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return "libhri_command.so";
  std::string path(exe, size_t(n));
  path = path.substr(0, path.find_last_of('/'));             // native/cpp/build
  return path + "/../../rust/target/release/libhri_command.so";  // native/rust/target/release
}

// One spoken command carried out (embodied_lib.deploy.missions.MissionRunner.run): understand it, check the
// world can do it, then run the skill's guarded loop until done, out of ticks, or a heard "stop".
struct MissionRunner {
  Controller& c;
  CommandPipeline& hri;
  json skills;
  size_t map_index = 0, scene_index = 0;

  json understand(const std::string& text, double& ms) {
    const auto t = Clock::now();
    json d = hri.decide(text);
    ms = seconds(Clock::now() - t) * 1e3;
    return d;
  }

  json run(const std::string& text, long interrupt_tick, const std::string& interrupt) {
    double decide_ms = 0;
    const json d = understand(text, decide_ms);
    json result = {{"text", text}, {"decision", d}, {"decide_ms", std::round(decide_ms * 1e3) / 1e3},
                   {"skill", nullptr}, {"ticks", 0}, {"actuations", 0}, {"reason", nullptr}};
    auto refuse = [&](const std::string& why) {
      result["status"] = "refused";
      result["reason"] = why;
      return result;
    };
    if (!d["refused"].is_null()) return refuse("ask again: " + d["refused"].get<std::string>());
    const std::string action = d["action"].get<std::string>();
    if (action == "stop") {
      result["status"] = "done";
      result["skill"] = "stop";
      result["reason"] = "nothing was running; the robot stays where it is";
      return result;
    }
    if (skills["unsupported"].contains(action)) return refuse(skills["unsupported"][action].get<std::string>());
    if (!skills.contains(action)) return refuse(action + " is no skill of these robots");
    Channel* ch = channel(skills[action].get<std::string>());
    if (!ch) return refuse(action + " needs the " + skills[action].get<std::string>() + " model (--models)");
    if (action == "pick") {
      const json colour = d["params"].value("colour", json(nullptr));
      bool there = false;
      for (const auto& c : skills["table_colours"]) there = there || c == colour;
      if (!there) return refuse("there is no " + (colour.is_string() ? colour.get<std::string>() : "such") + " cube on the table");
      ch->table->reset(scene_index);
    } else {
      ch->grid->reset(map_index);
      const std::string why = ch->grid->set_goal(d["params"]["row"].get<int>(), d["params"]["col"].get<int>());
      if (!why.empty()) return refuse("cannot go there: " + why);
    }
    result["skill"] = action;
    // the skill's loop: one channel, ticks back to back with the rate's deadlines
    ch->has_last = false;
    ch->episode_ticks = 0;
    const long before = ch->actuations, max_ticks = skills["max_ticks"].get<long>();
    const auto period_d = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / c.opt.rate_hz));
    const auto budget_d = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(c.opt.infer_budget / c.opt.rate_hz));
    long tick = 0, stopped_at = -1;
    bool out_of_ticks = false;
    while (!ch->done() && !out_of_ticks) {
      if (tick == interrupt_tick) {
        double ms = 0;
        const json heard = understand(interrupt, ms);
        if (heard["refused"].is_null() && heard["action"] == "stop") {
          stopped_at = tick;
          break;  // halted within the tick it is heard: no action this tick
        }
      }
      const auto started = Clock::now();
      const Reading r = c.sense(*ch);
      const Step s = guard_act(*ch, r, started, started + budget_d, kNoFault);
      c.apply(*ch, s.action);
      ++ch->interventions[s.cause];
      ++tick, ++ch->episode_ticks;
      out_of_ticks = ch->episode_ticks >= std::min<long>(ch->max_ticks, max_ticks);
      if (!c.opt.free_running) sleep_until(started + period_d);
    }
    result["ticks"] = tick;
    result["actuations"] = ch->actuations - before;
    const bool success = ch->navigation ? ch->grid->success : ch->table->success;
    result["status"] = stopped_at >= 0 ? "stopped" : success ? "done" : "failed";
    if (stopped_at >= 0) result["stopped_at_tick"] = stopped_at;
    if (ch->navigation) result["final"] = {{"cell", {ch->grid->agent[0], ch->grid->agent[1]}}};
    else result["final"] = {{"lift_m", std::round(ch->table->lift * 1e4) / 1e4}};
    if (!success && stopped_at < 0) result["reason"] = "the skill ran out of ticks";
    return result;
  }

  Channel* channel(const std::string& name) {
    for (auto& ch : c.channels)
      if (ch.name == name) return ch.network ? &ch : nullptr;
    return nullptr;
  }
};

json run_missions(Controller& c) {
  const std::string library = c.opt.hri_library.empty() ? default_hri_library() : c.opt.hri_library;
  CommandPipeline hri(library, c.opt.exports + "/command_pipeline/command_pipeline.onnx");
  MissionRunner runner{c, hri, read_json(c.opt.episodes + "/skills.json", "skills.json")};
  if (c.opt.maps > 0) runner.map_index = size_t(c.opt.maps - 1);
  if (c.opt.scenes > 0) runner.scene_index = size_t(c.opt.scenes - 1);
  const std::vector<char> bytes = runner::read_file(c.opt.commands, "commands file");
  const std::string text(bytes.begin(), bytes.end());
  json results = json::array();
  std::map<std::string, long> by_status;
  std::vector<double> decide_ms;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    // "TEXT" or "TEXT<TAB>TICK<TAB>HEARD": HEARD is spoken at tick TICK of the skill (a "stop")
    long interrupt_tick = -1;
    std::string interrupt;
    const size_t tab = line.find('\t');
    if (tab != std::string::npos) {
      const size_t tab2 = line.find('\t', tab + 1);
      if (tab2 == std::string::npos) throw std::runtime_error("commands file: '" + line + "' needs TEXT<TAB>TICK<TAB>HEARD");
      interrupt_tick = to_long("interrupt tick", line.substr(tab + 1, tab2 - tab - 1), 0, 1000000);
      interrupt = line.substr(tab2 + 1);
      line = line.substr(0, tab);
    }
    json r = runner.run(line, interrupt_tick, interrupt);
    ++by_status[r["status"].get<std::string>()];
    decide_ms.push_back(r["decide_ms"].get<double>() / 1e3);
    results.push_back(std::move(r));
  }
  return {{"controller", "C++ embodied_controller"}, {"command", "missions"}, {"runtime", c.opt.runtime},
          {"tokenizer", "tokenizers (Rust, exported tokenizer.json) via libhri_command.so's C ABI"},
          {"hri_library", library}, {"map_seed", runner.skills.is_null() ? json(nullptr) : json(c.grid ? c.grid->maps[runner.map_index % c.grid->maps.size()].seed : -1)},
          {"scene_seed", c.table ? c.table->seeds[runner.scene_index % c.table->seeds.size()] : -1},
          {"commands", results.size()}, {"by_status", by_status}, {"decide_ms", percentiles_ms(decide_ms)},
          {"missions", results}};
}

// check-world: the controller's view of the exported episodes, for the tests to compare with Python's.
json check_world(const Options& opt) {
  const json maps = read_json(opt.episodes + "/maps.json", "maps.json");
  world::GridWorld grid(maps, 2, maps.at("grid_size").get<int>());
  const std::vector<int> moves{3, 1, 3, 1, 0, 2, 3, 3, 1, 1, 0, 3};  // a fixed walk (bumps and revisits included)
  const size_t n_maps = opt.maps > 0 ? std::min(size_t(opt.maps), grid.maps.size()) : grid.maps.size();
  std::ofstream observations(opt.out + ".observations.f32", std::ios::binary);
  std::vector<float> obs(size_t(grid.observation_size()));
  for (size_t m = 0; m < n_maps; ++m) {
    grid.reset(m);
    grid.observe(obs.data());
    observations.write(reinterpret_cast<const char*>(obs.data()), std::streamsize(obs.size() * sizeof(float)));
    for (int a : moves) {
      grid.step(a);
      grid.observe(obs.data());
      observations.write(reinterpret_cast<const char*>(obs.data()), std::streamsize(obs.size() * sizeof(float)));
    }
  }
  const json scenes = read_json(opt.episodes + "/scenes.json", "scenes.json");
  world::Tabletop table(scenes, opt.episodes, true);
  const size_t n_scenes = opt.scenes > 0 ? std::min(size_t(opt.scenes), table.seeds.size()) : table.seeds.size();
  std::ofstream frames(opt.out + ".frames.u8", std::ios::binary);
  std::vector<uint8_t> frame(table.frame_bytes());
  json states = json::array();
  const float actions[3][4] = {{1.0f, -0.5f, -1.0f, -1.0f}, {0.3f, 0.7f, -0.2f, 1.0f}, {-1.0f, 0.0f, 1.0f, 1.0f}};
  for (size_t s = 0; s < n_scenes; ++s) {
    table.reset(s);
    json per_scene = json::array();
    for (int k = 0; k <= 3; ++k) {
      if (k > 0) table.step(actions[k - 1]);
      float state[10];
      table.read_state(state);
      per_scene.push_back(std::vector<float>(state, state + 10));
      table.render(frame.data());
      frames.write(reinterpret_cast<const char*>(frame.data()), std::streamsize(frame.size()));
    }
    states.push_back(per_scene);
  }
  return {{"maps", n_maps}, {"moves", moves}, {"observation_size", obs.size()}, {"scenes", n_scenes},
          {"actions", {std::vector<float>(actions[0], actions[0] + 4), std::vector<float>(actions[1], actions[1] + 4),
                       std::vector<float>(actions[2], actions[2] + 4)}},
          {"states", states}, {"image_size", table.image_size}};
}

void write_report(const Options& opt, const json& report) {
  // replace: an error text may quote bytes of a damaged model file that are not UTF-8
  const std::string text = report.dump(1, ' ', false, json::error_handler_t::replace);
  if (opt.out.empty()) {
    std::puts(text.c_str());
    return;
  }
  std::ofstream f(opt.out);
  f << text << "\n";
  if (!f) throw std::runtime_error("cannot write " + opt.out);
}

}  // namespace
}  // namespace controller

int main(int argc, char** argv) {
  using namespace controller;
  const Options opt = parse(argc, argv);
  try {
    set_executorch_threads(uint32_t(pool_threads(opt)));
    if (opt.command == "check-world") {
      if (opt.out.empty()) throw std::runtime_error("check-world needs --out PREFIX");
      write_report(opt, check_world(opt));
      return 0;
    }
    Controller c(opt);
    json report = opt.command == "missions" ? run_missions(c) : c.run_loop();
    write_report(opt, report);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
