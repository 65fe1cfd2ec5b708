# Embodied AI Deployment Workbook
#   make run    set up everything and execute every notebook headlessly (PROFILE=quick|full)
#   make test   set up everything and run the test suite
#   make native  build the C++ and Rust runners (make run and make test do it too)
#   make bench   batch-1 latency of every runtime (Python and native), the Python and C++ controllers' experiments, INT8 /
#                memory / TorchScript profiling with the design document's claims, scaling over workers and
#                processes, seeded hostile model files against every loader, to runs/bench/
#   make screenshots  JupyterLab in headless Chromium: a screenshot of every executed notebook (runs/notebooks) to runs/screenshots
#   make fuzz    libFuzzer + ASan/UBSan on the C++ golden-vector reader (FUZZ_SECONDS, default 120)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
BENCH_PROFILE ?= full
KERNEL := embodied-workbook
STAMP := $(VENV)/.installed

.PHONY: setup system-deps native run test bench screenshots fuzz clean-outputs help
help:
	@grep '^#   make' Makefile

setup: system-deps $(STAMP)

# System packages: g++ (AOTInductor compiles C++; the C++ runners), Mesa EGL + its headers (MuJoCo's CPU rendering,
# in Python and in the C++ controller),
# nlohmann/json (the C++ runners read manifest.json), OpenSSL libcrypto (sha256, Ed25519), apt-get + dpkg-deb (ONNX Runtime headers),
# cargo >= 1.92 (Rust runners; Debian's is too old, rustup's works), libclang (bindgen, for the executorch crate), chromium + chromium-driver (the browser test:
# JupyterLab in headless Chromium through Selenium, nothing downloaded at run time).
system-deps:
	@command -v g++ >/dev/null && command -v $(PYTHON) >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq g++ python3 python3-venv; \
	  else echo "error: need g++ and $(PYTHON); install them (Debian: sudo apt-get install g++ python3-venv)" >&2; exit 1; fi; }
	@ldconfig -p | grep -q 'libEGL_mesa.so.0' && test -f /usr/include/EGL/egl.h || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri libegl-dev; \
	  else echo "error: MuJoCo renders with Mesa's EGL, and the C++ controller links it; install it (Debian: sudo apt-get install libegl1 libegl-mesa0 libegl-dev)" >&2; exit 1; fi; }
	@test -f /usr/include/nlohmann/json.hpp || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nlohmann-json3-dev; \
	  else echo "error: the C++ runners read manifests with nlohmann/json; install it (Debian: sudo apt-get install nlohmann-json3-dev)" >&2; exit 1; fi; }
	@test -f /usr/include/openssl/evp.h || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libssl-dev; \
	  else echo "error: the C++ runners verify model files with OpenSSL; install it (Debian: sudo apt-get install libssl-dev)" >&2; exit 1; fi; }
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
	  else echo "error: the browser test opens JupyterLab in Debian's chromium; install it (Debian: sudo apt-get install chromium chromium-driver)" >&2; exit 1; fi; }
	@ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libclang-dev; \
	  else echo "error: the executorch crate generates its bindings with bindgen, which needs libclang; install it (Debian: sudo apt-get install libclang-dev)" >&2; exit 1; fi; }
	@command -v cargo >/dev/null || { echo "error: cargo not found; install Rust >= 1.92 (rustup) for the Rust runners" >&2; exit 1; }
	@command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || { \
	  echo "error: apt-get and dpkg-deb are needed to fetch ONNX Runtime's C++ headers (Debian/Ubuntu)" >&2; exit 1; }

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# PyPI's torch pulls ~3 GB of nvidia-* wheels; one interrupted download must not fail a CI run, so pip resumes
	@# each download many times and the whole install is retried (finished wheels come from pip's cache)
	@# not --no-compile: it saves pip's 75 s of byte-compiling, but where PYTHONDONTWRITEBYTECODE is set (this
	@# machine) nothing is cached afterwards and every process compiles torch again (make test: 2.4 min slower)
	@for attempt in 1 2 3; do \
	  $(PY) -m pip install -q --retries 10 --resume-retries 40 --timeout 60 -e . && break; \
	  test $$attempt = 3 && { echo "error: pip install failed three times (network?); run make again to resume" >&2; exit 1; }; \
	  echo "pip install failed (attempt $$attempt of 3); retrying in 20 s" >&2; sleep 20; \
	done
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Embodied workbook (.venv)" >/dev/null
	touch $@

# Build once per run, release mode; CMake and Cargo skip what is up to date.
native: setup
	$(PY) -m embodied_lib.native build

run: native
	$(PY) -m embodied_lib.workbook --profile $(PROFILE) --kernel $(KERNEL)

# two workers: the quick workbook (about 16 minutes) runs beside the other tests (tests/conftest.py groups them)
test: native
	$(PY) -m pytest -n 2

bench: native
	@test -f exports/navigation/manifest.json || { echo "error: no exports yet; run 'make run' first" >&2; exit 1; }
	$(PY) -m embodied_lib.runtime.latency exports/*/ --out runs/bench/latency.json
	$(PY) tools/hri_pipeline_latency.py --out runs/bench/hri_pipeline_latency.json
	$(PY) -m embodied_lib.deploy all --profile $(BENCH_PROFILE) --quiet --out runs/bench/deploy
	$(PY) -m embodied_lib.deploy native --profile $(BENCH_PROFILE) --quiet --out runs/bench/controller
	$(PY) -m embodied_lib.deploy native-sustained --profile $(BENCH_PROFILE) --quiet --out runs/bench/controller
	$(PY) -m embodied_lib.profiling --profile $(BENCH_PROFILE) --out runs/bench/profiling --all-models --pruning-model navigation --pruning-model manipulation
	$(PY) -m embodied_lib.scale --out runs/bench/scale.json
	$(PY) -m embodied_lib.hostile exports --out runs/bench/hostile_files.json

screenshots: setup
	$(PY) -m embodied_lib.browser screenshots runs/notebooks --out runs/screenshots

FUZZ_SECONDS ?= 120
FUZZ_DIR := runs/fuzz
# clang's libFuzzer (Debian: clang), seeded with the crafted corpus the tests use; crashes land in $(FUZZ_DIR).
fuzz: setup
	@command -v clang++ >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq clang; \
	  else echo "error: make fuzz needs clang++ (libFuzzer); install it (Debian: sudo apt-get install clang)" >&2; exit 1; fi; }
	mkdir -p $(FUZZ_DIR)/corpus
	$(PY) -m embodied_lib.export.golden_corpus $(FUZZ_DIR)/corpus
	clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  native/cpp/fuzz_golden.cpp -o $(FUZZ_DIR)/fuzz_golden -lcrypto
	cd $(FUZZ_DIR) && ./fuzz_golden -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -artifact_prefix=crash- corpus

clean-outputs:
	rm -rf runs exports/*/ data/*/
