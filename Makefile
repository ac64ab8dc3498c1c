# federator: `make demo` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LAB    := $(BIN)/federator lab

.PHONY: setup build bind kubectl lint typecheck unit integration test demo demo-down clean \
	constraints

# The dev tools at the versions of constraints.txt: a new release of one changes nothing
# until `make constraints` takes it.
$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "$(PYTHON) cannot make a virtual environment: install python3-venv" \
	       "(Debian: sudo apt-get install python3-venv)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# constraints.txt made again from the newest releases that pyproject.toml allows.
constraints:
	rm -rf $(VENV).constraints
	$(PYTHON) -m venv $(VENV).constraints
	$(VENV).constraints/bin/pip install --quiet --upgrade pip
	$(VENV).constraints/bin/pip install --quiet '.[dev]'
	{ sed -n '1,2p' constraints.txt; \
	  $(VENV).constraints/bin/pip freeze --exclude federator; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(VENV).constraints

setup: $(VENV)/.installed

# Kubernetes, etcd and kwok from the Go module proxy, cached under ~/.cache/federator.
build: setup
	$(LAB) build

# BIND 9 (named, dig, nsupdate) for the DNS tests: Debian's packages, if they are missing.
bind:
	@{ command -v named || test -x /usr/sbin/named; } >/dev/null && command -v dig >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends bind9 bind9-dnsutils >/dev/null; \
	  else \
	    echo "the DNS tests need BIND 9: sudo apt-get install bind9 bind9-dnsutils" >&2; exit 1; \
	  fi; }

# The lab runs Kubernetes 1.33: kubectl 1.32 to 1.34 speaks to it (kubectl's version skew).
kubectl:
	@minor=$$(kubectl version --client -o json 2>/dev/null | \
	  $(PYTHON) -c 'import json,sys; v=json.load(sys.stdin)["clientVersion"]; \
	  print(v["major"] + "." + v["minor"].rstrip("+"))' 2>/dev/null); \
	case "$$minor" in \
	  1.32|1.33|1.34) ;; \
	  "") echo "the tests need kubectl 1.33 (1.32 to 1.34) on PATH; none found" >&2; exit 1;; \
	  *) echo "the tests need kubectl 1.33 (1.32 to 1.34); found $$minor" >&2; exit 1;; \
	esac

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m 'not integration'

integration: build bind kubectl
	$(BIN)/pytest -m integration

# Tests run in a random order (pytest-randomly; the seed is printed first and is replayed
# with `$(BIN)/pytest --randomly-seed=N`), in two processes (pytest-xdist: each test file
# whole in one of them, each process with a lab of its own), and the 25 slowest are listed
# at the end with where the slowest waited.
test: lint typecheck build bind kubectl
	$(BIN)/pytest -n 2 --dist loadfile --durations=25

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
