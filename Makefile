# The README's two commands: `make demo` (set up + the tiny pipeline end to end) and `make test`.
# `make screenshots` (maintainers) refreshes figures/widgets_*.png from the browser test.
VENV ?= .venv
PY := $(VENV)/bin/python
KERNEL := gill-lite
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export PYTHONHASHSEED ?= 0

.PHONY: setup browser demo test notebooks screenshots readme clean-runs

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (gill-lite)" > /dev/null
	touch $@

setup: $(VENV)/.installed browser

# Chromium + chromedriver for tests/test_browser_widgets.py, from Debian's packages when missing and we are root;
# otherwise (or if apt-get fails) the browser test skips and says why
browser:
	@if command -v chromium > /dev/null && command -v chromedriver > /dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver > /dev/null) \
		|| echo "make: could not install chromium chromium-driver; the browser test will skip"; \
	else echo "make: chromium/chromedriver missing (apt-get install chromium chromium-driver as root); the browser test will skip"; fi

demo: setup
	$(VENV)/bin/gill-lite reproduce --profile tiny

test: setup
	GILL_PROFILE=ci MPLBACKEND=Agg $(PY) -m pytest -q -rs --durations=15 tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

# the browser test saves its screenshots under runs/browser/ (never tracked); this copies them into figures/
SHOTS = $${GILL_RUNS_DIR:-runs}/browser
screenshots: setup
	rm -f $(SHOTS)/widgets_*.png
	GILL_PROFILE=ci MPLBACKEND=Agg $(PY) -m pytest -q -rs tests/test_browser_widgets.py -p no:cacheprovider
	cp $(SHOTS)/widgets_*.png figures/

# after editing a notebook's source (notebooks/NN_name.py) outside JupyterLab, or its .ipynb without jupytext:
# the newer file of each pair rewrites the other (JupyterLab with jupytext, installed by setup, saves both itself)
notebooks: $(VENV)/.installed
	$(VENV)/bin/jupytext --sync notebooks/[0-9][0-9]_*.py

# maintainers: after `make demo`, refresh the README's results table and the committed figures/ from runs/tiny
readme: setup
	$(VENV)/bin/gill-lite report --profile tiny --publish

clean-runs:
	rm -rf runs
