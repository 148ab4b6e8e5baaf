# PMRS: `make demo` and `make test` each work as the only command on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_DIR ?= demo-data

.PHONY: install test demo bench proto clean java-check browser FORCE

# Java 17 or later: Spark (`pmrs train-wmf --engine spark`, its tests and bench) runs in a JVM.
JAVA_HELP := Spark needs Java 17 or later (java on PATH, or JAVA_HOME set). Debian/Ubuntu: \
	apt-get install openjdk-17-jre-headless; elsewhere any JDK 17+ (e.g. Eclipse Temurin).
JAVA_MAJOR = $$( { if [ -n "$$JAVA_HOME" ]; then "$$JAVA_HOME/bin/java" -version; else java -version; fi; } 2>&1 \
	| sed -nE '1s/.*version "([0-9]+)(\.([0-9]+))?.*/\1 \3/p' | awk '{print ($$1 == 1) ? $$2 : $$1}')

install: $(STAMP) browser
	@major=$(JAVA_MAJOR); if [ -z "$$major" ] || [ "$$major" -lt 17 ]; then \
		echo "warning: no Java 17+ found (found: $${major:-none}). $(JAVA_HELP)" >&2; fi

# A headless Chromium and its driver: pmrs-web's browser tests, `make demo`'s screenshots and the
# page-load bench drive it through Selenium. Installed with apt as root when missing (as in CI).
BROWSER_HELP := pmrs-web's browser tests need Chromium and chromedriver: on Debian/Ubuntu \
	apt-get install chromium chromium-driver (as root); elsewhere install Chromium or Chrome with the \
	matching chromedriver on PATH (or set PMRS_CHROMIUM and PMRS_CHROMEDRIVER).
browser:
	@if { [ -n "$$PMRS_CHROMIUM" ] || command -v chromium >/dev/null 2>&1; } && \
		{ [ -n "$$PMRS_CHROMEDRIVER" ] || command -v chromedriver >/dev/null 2>&1; }; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium and chromium-driver (pmrs-web's browser tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
		|| echo "warning: could not install them. $(BROWSER_HELP)" >&2; \
	else echo "warning: no headless browser found. $(BROWSER_HELP)" >&2; fi

java-check:
	@major=$(JAVA_MAJOR); if [ -z "$$major" ] || [ "$$major" -lt 17 ]; then \
		echo "error: no Java 17+ found (found: $${major:-none}); the Spark tests need it. $(JAVA_HELP)" >&2; exit 1; fi

# CPU torch first, from the local wheel (a bare `torch` would pull a multi-GB CUDA build),
# then the project in editable mode with its test extras. Strict editable mode: the packages are
# a link tree (build/__editable__.*) on sys.path, so a folder named like one of them in the
# current directory (a work directory /data/pmrs, and `cd /data; python -c "import pmrs"`) cannot
# hide it, as it does under setuptools' default mode (a finder asked only after sys.path). A link
# tree links files: the install re-runs when pyproject.toml or the set of package files changes.
$(STAMP): pyproject.toml $(VENV)/.files
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=strict
	touch $(STAMP)

# The package files' names, rewritten only when they change (a file added, removed or renamed).
$(VENV)/.files: FORCE
	@mkdir -p $(VENV)
	@find pmrs server clients indexer -type f ! -path '*/__pycache__/*' | LC_ALL=C sort > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

# The suite on both cores of the 2-core machine it is sized for (pytest-xdist; each test file
# stays on one worker, so its module fixtures are built once); TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: install java-check
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

demo: install
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pmrs.demo --dir $(DEMO_DIR)

bench: install java-check
	$(BIN)/python -m bench.run

# Regenerate the gRPC code from the .proto (committed; a test fails when it is stale).
proto: install
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --grpc_python_out=. --pyi_out=. \
		proto/pmrs/v1/recommender.proto

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
