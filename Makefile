# Two set-up commands (see README): `make demo` and `make test`.
# Both install what is missing into $(VENV) first (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= data/synth_kitti
SEED ?= 0
JOBS ?= 2
STAMP := $(VENV)/.dm3d_installed

.PHONY: install data demo test lint checkpoints
install: $(STAMP)
$(STAMP): scripts/install.sh scripts/constraints-cpu.txt pyproject.toml
	bash scripts/install.sh $(VENV)
	touch $@

data: install
	$(PY) tools/make_synthetic_kitti.py --out $(DATA) --seed $(SEED)

demo: data
	$(PY) tools/demo.py --data-root $(DATA)

# one pytest-xdist worker per core (JOBS=1: serial); test files stay whole on one worker
test: install
	$(PY) -m pytest -q -n $(JOBS) --dist loadfile tests

# ruff (pyflakes, pycodestyle, isort rules; settings in pyproject.toml)
lint: install
	$(VENV)/bin/ruff check .

# Re-train the shipped demo checkpoints at seed 0 (20-35 min each on 2 cores; each Ada3D
# model in three steps, each loading the one before; the first two steps are not shipped).
checkpoints: data
	$(PY) tools/train_demo_checkpoints.py --data-root $(DATA)
