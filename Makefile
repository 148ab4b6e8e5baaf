# PMRS: `make demo` and `make test` each work as the only command on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_DIR ?= demo-data

.PHONY: install test demo bench proto clean

install: $(STAMP)

# CPU torch first, from the local wheel (a bare `torch` would pull a multi-GB CUDA build),
# then the project in editable mode with its test extras. Re-runs only when pyproject changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/python -m pmrs.demo --dir $(DEMO_DIR)

bench: install
	$(BIN)/python -m bench.run

# Regenerate the gRPC code from the .proto (committed; a test fails when it is stale).
proto: install
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --grpc_python_out=. --pyi_out=. \
		proto/pmrs/v1/recommender.proto

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
