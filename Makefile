# federator: `make demo` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LAB    := $(BIN)/federator lab

.PHONY: setup build bind lint typecheck unit integration test demo demo-down clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# Kubernetes, etcd and kwok from the Go module proxy, cached under ~/.cache/federator.
build: setup
	$(LAB) build

# BIND 9 (named, dig, nsupdate) for the DNS tests: Debian's packages, if they are missing.
bind:
	@command -v named >/dev/null && command -v dig >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends bind9 bind9-dnsutils >/dev/null; \
	  else \
	    echo "the DNS tests need BIND 9: sudo apt-get install bind9 bind9-dnsutils" >&2; exit 1; \
	  fi; }

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m 'not integration'

integration: build bind
	$(BIN)/pytest -m integration

test: lint typecheck build bind
	$(BIN)/pytest

# The lab (plane + 3 members), federator serving it, and a Deployment spread 2:1:1 over the
# members. It stays up for you to explore; `make demo-down` stops it.
demo: build
	deploy/demo.sh

demo-down: setup
	@dir=$$(dirname "$$($(LAB) env | sed 's/^export KUBECONFIG=//')" 2>/dev/null); \
	if [ -f "$$dir/serve.pid" ]; then kill "$$(cat $$dir/serve.pid)" 2>/dev/null || true; fi
	$(LAB) down

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
