# Set-up and entry points. `make demo` and `make test` create the virtual
# environment when it is missing and install everything they need.
PYTHON ?= python3
VENV ?= .venv
# Installed first when the environment has no torch, so that set-up never pulls
# a multi-GB CUDA build by accident. Choose another build with TORCH_SPEC=...
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo_output
# DEMO_ARGS=-v: every log line (MONAI's per-iteration losses) instead of one bar per stage
DEMO_ARGS ?=
BENCH_OUT ?= bench_output
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Slicer 5.8-5.10 ship pydicom 2.4.4: image I/O is also tested against it (Testing/Python/test_pydicom24.py).
PYDICOM24 := $(VENV)/pydicom24
# MONAI Label 0.8.5 gets its own environment (Testing/Python/test_monailabel_app.py drives it by subprocess): it
# hard-imports torchvision, whose PyPI build imports only beside PyPI's CUDA build of torch (it runs on the CPU), and
# its DICOM SEG dependency needs pydicom 2.x. The main environment stays CPU torch and pydicom 3.
MONAILABEL_VENV ?= .venv-monailabel
MONAILABEL_STAMP := $(MONAILABEL_VENV)/.installed-stamp
MONAILABEL_SPEC ?= torch==2.14.1 torchvision==0.29.1 monailabel==0.8.5 pydicom==2.4.4

.PHONY: install monailabel-env demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

$(PYDICOM24): | $(BIN)/python
	$(BIN)/python -m pip install -q --no-deps --target $(PYDICOM24) pydicom==2.4.4

install: $(STAMP) $(PYDICOM24)

$(MONAILABEL_STAMP):
	$(PYTHON) -m venv $(MONAILABEL_VENV)
	$(MONAILABEL_VENV)/bin/python -m pip install -q --upgrade pip
	$(MONAILABEL_VENV)/bin/python -m pip install -q $(MONAILABEL_SPEC)
	touch $@

monailabel-env: $(MONAILABEL_STAMP)

# The main job on the embedded default (phantoms): RA texture, then Sjogren ultrasound.
demo: install
	$(BIN)/python -m RheumImagingDemo.rheumtexture_demo_cli --out $(DEMO_OUT) $(DEMO_ARGS)
	$(BIN)/python -m RheumImagingDemo.sjogrenus_demo_cli --out $(DEMO_OUT) $(DEMO_ARGS)

test: install monailabel-env
	$(BIN)/python -m pytest -q -ra Testing/Python

# Speed and memory figures, each a ratio measured in this one run (docs/benchmarks.md).
bench: install
	$(BIN)/python Testing/Benchmarks/benchmark.py --out $(BENCH_OUT)

clean:
	rm -rf $(VENV) $(MONAILABEL_VENV) $(DEMO_OUT) $(BENCH_OUT) build *.egg-info
