# Two commands on a fresh machine: `make run` and `make test`. Each does its own set-up:
# virtual environment, Python packages, generated protobuf code, Neo4j's jars from Maven.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PROTOS := $(wildcard protos/identity/v1/*.proto)
GEN    := identity/v1/.generated
INSTALLED := $(VENV)/.installed

.PHONY: install proto neo4j neo4j-stop kafka kafka-stop run typecheck chromium node-sdks test test-unit bench clean

install: $(INSTALLED) $(GEN)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Generated code must exist before the editable install maps the `identity` package.
$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install -q 'grpcio-tools==1.85.1'
	$(MAKE) --no-print-directory proto
	$(PY) -m pip install -q -e '.[test]'
	touch $@

proto: $(GEN)

$(GEN): $(PROTOS) | $(PY)
	rm -rf identity
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	touch identity/__init__.py identity/v1/__init__.py $@

neo4j: install
	$(PY) -m localneo4j start

neo4j-stop:
	-$(PY) -m localneo4j stop

# A one-node Kafka (KRaft) from Maven Central's jars, in .kafka/ (localkafka/launcher.py)
kafka: install
	$(PY) -m localkafka start

kafka-stop:
	-$(PY) -m localkafka stop

run: neo4j
	exec $(PY) -m server

# mypy, strict, on the packages listed in pyproject.toml's [tool.mypy] files
typecheck: install
	$(PY) -m mypy

# Chromium from Debian for the Neo4j Browser test (tests/integration/test_browser.py), driven by
# the playwright package; Playwright's own browser download is not used (about 40 s, once).
chromium:
	@command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

# The stock Segment Node SDK for the collector's tests (tests/integration/node), from its lock file.
NODE_SDKS := tests/integration/node/node_modules/.installed
node-sdks: $(NODE_SDKS)

$(NODE_SDKS): tests/integration/node/package-lock.json
	npm ci --prefix tests/integration/node --silent --no-audit --no-fund
	touch $@

test: neo4j typecheck chromium node-sdks
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit

clean: neo4j-stop kafka-stop
	rm -rf $(VENV) identity *.egg-info .pytest_cache
