# federator: `make demo` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LAB    := $(BIN)/federator lab

.PHONY: setup build lint typecheck unit integration test demo demo-down clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# Kubernetes, etcd and kwok from the Go module proxy, cached under ~/.cache/federator.
build: setup
	$(LAB) build

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m 'not integration'

integration: build
	$(BIN)/pytest -m integration

test: lint typecheck build
	$(BIN)/pytest

# The lab (plane + 3 members) and a workload running in each member. It stays up for you to
# explore; `make demo-down` stops it.
demo: build
	$(LAB) up
	@eval "$$($(LAB) env)"; for c in member-1 member-2 member-3; do \
	  kubectl --context $$c create deployment hello --image=registry.k8s.io/pause:3.10 \
	    --replicas=2 --dry-run=client -o yaml | kubectl --context $$c apply -f - >/dev/null && \
	  kubectl --context $$c rollout status deployment/hello --timeout=120s; done; \
	for c in plane member-1 member-2 member-3; do echo "== $$c"; \
	  kubectl --context $$c get nodes -L topology.kubernetes.io/region,topology.kubernetes.io/zone; \
	done; for c in member-1 member-2 member-3; do echo "== pods in $$c"; \
	  kubectl --context $$c get pods -o wide; done
	$(LAB) status
	@echo; echo "The lab is up. Use it with:  eval \"\$$($(LAB) env)\"   Stop it: make demo-down"

demo-down: setup
	$(LAB) down

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
