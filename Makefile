# The README's two commands: `make demo` (set up + the tiny pipeline end to end) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
KERNEL := gill-lite
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export PYTHONHASHSEED ?= 0

.PHONY: setup demo test readme clean-runs

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (gill-lite)" > /dev/null
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/gill-lite reproduce --profile tiny

test: setup
	GILL_PROFILE=ci MPLBACKEND=Agg $(PY) -m pytest -q tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

# maintainers: after `make demo`, refresh the README's results table and the committed figures/ from runs/tiny
readme: setup
	$(VENV)/bin/gill-lite report --profile tiny --publish

clean-runs:
	rm -rf runs
