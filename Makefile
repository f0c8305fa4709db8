# The few commands a person types. `make run` and `make test` set everything up on a fresh clone
# (Python 3.11, Java 17 and Maven are all they need) and skip what is already done.

PYTHON      ?= python3.11
VENV        := .venv
BIN         := $(VENV)/bin
JARS        := .jars
STAMPS      := .make
PEOPLE      ?= 3000
SEED        ?= 42
ENV         ?= local
# The demo key is for synthetic data only; real runs export LAKEHOUSE_HMAC_KEY from a secret store.
DEMO_KEY    := demo-key-for-synthetic-data-only

export PATH := $(CURDIR)/$(BIN):$(PATH)
export PYSPARK_PYTHON := $(CURDIR)/$(BIN)/python
export SPARK_LOCAL_IP := 127.0.0.1

.PHONY: help setup venv jars run test lint format clean clean-data bench-er bench-bi serve-bi stop-bi docs s3proxy s3-up s3-down metastore-up metastore-down executor-venv cluster-up cluster-down bench notebooks notebooks-run

help:
	@echo "make run    set up, generate $(PEOPLE) people, run the whole pipeline locally, print the tables"
	@echo "make test   set up and run the test suite (ruff, mypy, unit, integration, end-to-end)"
	@echo "make setup  create $(VENV), install the package, resolve the JVM jars into $(JARS)/"
	@echo "make serve-bi  start the read-only BI endpoint (Spark Thrift server, JDBC/ODBC) on 127.0.0.1:$(BI_PORT) over gold and public;  make stop-bi  stop it"
	@echo "make docs   regenerate docs/data-dictionary.md from the tables of the last make run and conf"
	@echo "make notebooks  JupyterLab on 127.0.0.1:$(NOTEBOOK_PORT) over notebooks/ (the lakehouse of the last make run; ENV=standalone for the cluster)"
	@echo "make notebooks-run  every notebook run headless, one after the other, to HTML pages in data/notebooks/ (no browser needed)"
	@echo "make lint   ruff and mypy only;  make format  ruff format"
	@echo "make clean-data  remove ./data (generated deliveries and tables);  make clean  everything built"
	@echo "make bench-bi  BI query latency over the Thrift server: on the make run lakehouse, or BENCH_BI_PEOPLE=N (built once under bench/bi/work)"
	@echo "make s3-up  start the local S3-compatible server (S3Proxy) on 127.0.0.1:$(S3_PORT) for ENV=s3;  make s3-down  stop it"
	@echo "make metastore-up  start a shared metastore (Derby network server) on 127.0.0.1:$(METASTORE_PORT);  make metastore-down"
	@echo "make cluster-up  start a Spark standalone master (spark://127.0.0.1:$(CLUSTER_PORT)) and $(CLUSTER_WORKERS) workers;  make cluster-down  stop them"
	@echo "make bench  scale benchmark: the whole pipeline at BENCH_PEOPLE=$(BENCH_PEOPLE) people, BENCH_REPEATS=$(BENCH_REPEATS) runs each (bench/scale/results/)"
	@echo "make bench-er  entity-resolution benchmark: ours vs the deterministic baseline and Splink (BENCH_ER_PEOPLE=$(BENCH_ER_PEOPLE), BENCH_ER_REPEATS=$(BENCH_ER_REPEATS), BENCH_ER_ARGS=...)"

setup: $(STAMPS)/venv $(STAMPS)/jars $(STAMPS)/spark-defaults $(STAMPS)/s3proxy

venv: $(STAMPS)/venv
$(STAMPS)/venv: pyproject.toml
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

jars: $(STAMPS)/jars
# Delta's, S3A's and Derby's network jars from Maven Central (.jars/, .jars/s3a/, .jars/metastore/), then the
# lakehouse's own JVM classes compiled against pyspark's jars.
# They are resolved into a new folder that then takes the place of the old one, so a Spark job already running
# (which opens jars by path) never finds the folder empty.
$(STAMPS)/jars: infra/jvm/pom.xml infra/jvm/build.sh $(shell find infra/jvm/src -name '*.java') $(STAMPS)/venv
	@mkdir -p $(STAMPS)
	rm -rf $(JARS).new $(JARS).old
	mvn --batch-mode --quiet -f infra/jvm/pom.xml \
	  dependency:copy-dependencies@delta dependency:copy-dependencies@s3a dependency:copy-dependencies@metastore \
	  -Djars.dir=$(CURDIR)/$(JARS).new
	infra/jvm/build.sh $(BIN)/python $(JARS).new
	if [ -d $(JARS) ]; then mv $(JARS) $(JARS).old; fi
	mv $(JARS).new $(JARS) && rm -rf $(JARS).old
	@ls $(JARS)/*.jar
	@touch $@

s3proxy: $(STAMPS)/s3proxy
# The local S3-compatible server (infra/s3/pom.xml: S3Proxy from Maven Central) into .tools/s3proxy/.
$(STAMPS)/s3proxy: infra/s3/pom.xml
	@mkdir -p $(STAMPS) .tools/s3proxy
	rm -f .tools/s3proxy/*.jar
	mvn --batch-mode --quiet -f infra/s3/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/.tools/s3proxy
	@touch $@

$(STAMPS)/spark-defaults: $(STAMPS)/venv $(STAMPS)/jars infra/spark/install-defaults.sh
	infra/spark/install-defaults.sh $(BIN)/python $(JARS)
	@touch $@

run: setup
	@if [ -z "$$LAKEHOUSE_HMAC_KEY" ]; then \
	  echo "NOTE: LAKEHOUSE_HMAC_KEY is not set; using the built-in DEMO key, fit for synthetic data only."; \
	fi
	LAKEHOUSE_HMAC_KEY="$${LAKEHOUSE_HMAC_KEY:-$(DEMO_KEY)}" $(BIN)/lakehouse demo --people $(PEOPLE) --seed $(SEED) --env $(ENV)

# Two test processes: 72 against 85 minutes in one on 2 cores, 66 since (docs/performance.md); tests/conftest.py
# runs each module in one process and hands out the heaviest first. TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
test: setup $(STAMPS)/executor-venv
	$(BIN)/pytest -n $(TEST_WORKERS)

# The BI endpoint (lakehouse/bi.py): run the pipeline first (make run).
BI_PORT ?= 10000
serve-bi: setup
	$(BIN)/lakehouse serve-bi --env $(ENV) --port $(BI_PORT)

stop-bi: setup
	$(BIN)/lakehouse stop-bi --env $(ENV)

# JupyterLab over notebooks/ (the `notebooks` extra, installed once), on loopback only. The notebooks open the
# lakehouse of the last `make run` through lakehouse.notebook.session(), in the environment LAKEHOUSE_ENV names.
NOTEBOOK_PORT ?= 8888
notebooks: setup $(STAMPS)/notebooks
	LAKEHOUSE_ENV=$(ENV) $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.port=$(NOTEBOOK_PORT) \
	  --ServerApp.root_dir=$(CURDIR)/notebooks --no-browser $(if $(filter 0,$(shell id -u)),--allow-root)

# The same notebooks without a browser: run one after the other (one kernel at a time, as the embedded metastore
# wants), each to an HTML page with its charts in data/notebooks/.
notebooks-run: setup $(STAMPS)/notebooks
	LAKEHOUSE_ENV=$(ENV) $(BIN)/jupyter nbconvert --to html --execute --output-dir $(CURDIR)/data/notebooks \
	  --ExecutePreprocessor.timeout=1800 notebooks/*.ipynb
	@echo "notebook pages (open them in any browser): $(CURDIR)/data/notebooks"

$(STAMPS)/notebooks: pyproject.toml $(STAMPS)/venv
	$(BIN)/python -m pip install --quiet -e ".[dev,notebooks]"
	@touch $@

# The data dictionary from the gold and public tables of the last `make run` (lakehouse/dictionary.py).
docs: setup
	$(BIN)/lakehouse dictionary --env $(ENV) --output docs/data-dictionary.md

lint: setup
	$(BIN)/ruff check lakehouse jobs tests bench
	$(BIN)/ruff format --check lakehouse jobs tests bench
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format lakehouse jobs tests bench
	$(BIN)/ruff check --fix lakehouse jobs tests bench

clean-data:
	rm -rf data

clean: clean-data
	rm -rf $(VENV) $(EXECUTOR_VENV) $(JARS) $(JARS).new $(JARS).old $(STAMPS) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# Scale benchmark (bench/scale/run_bench.py): sizes in people, runs per size (one count, or one per size).
# A long run can span sittings: BENCH_ARGS="--through silver" stops after that stage, BENCH_ARGS="--resume" goes on.
BENCH_PEOPLE  ?= 10000,100000,1000000
BENCH_REPEATS ?= 3,3,1
BENCH_ARGS    ?=

# Entity-resolution benchmark (bench/er/README.md): sizes in true people (about 9.1 records each), runs per system.
# Extra harness options go in BENCH_ER_ARGS, e.g. BENCH_ER_ARGS="--stress --timeout-s 7200".
BENCH_ER_PEOPLE  ?= 11000,110000
BENCH_ER_REPEATS ?= 3
BENCH_ER_ARGS    ?=

# The local S3-compatible server (infra/s3/s3-server) for ENV=s3: the buckets conf/env/s3.yaml names.
S3_PORT    ?= 9320
S3_DIR     ?= data/s3-server
S3_BUCKETS ?= c2c-landing c2c-lakehouse
# The shared metastore (infra/metastore/metastore-server) for jobs that run at the same time.
METASTORE_PORT ?= 1527
METASTORE_DIR  ?= data/metastore-server
# The standalone cluster (infra/spark/spark-cluster): each worker's cores and memory.
CLUSTER_PORT    ?= 7077
CLUSTER_DIR     ?= data/spark-cluster
CLUSTER_WORKERS ?= 2
CLUSTER_CORES   ?= 1
CLUSTER_MEMORY  ?= 3g
EXECUTOR_VENV   := .venv-executor

s3-up: $(STAMPS)/s3proxy
	infra/s3/s3-server start $(S3_DIR) $(S3_PORT) $(S3_BUCKETS)

s3-down:
	infra/s3/s3-server stop $(S3_DIR)

# The executors' Python on the stand-in cluster: the runtime dependencies of pyproject.toml without the project,
# as on a real cluster's image; the driver ships the project's code to them (conf/env/standalone.yaml).
executor-venv: $(STAMPS)/executor-venv
$(STAMPS)/executor-venv: pyproject.toml $(STAMPS)/venv
	test -x $(EXECUTOR_VENV)/bin/python || $(PYTHON) -m venv $(EXECUTOR_VENV)
	$(BIN)/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
	  > $(EXECUTOR_VENV)/requirements.txt
	$(EXECUTOR_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(EXECUTOR_VENV)/bin/python -m pip install --quiet -r $(EXECUTOR_VENV)/requirements.txt
	@touch $@

# The Spark standalone cluster (infra/spark/spark-cluster): a master and workers on 127.0.0.1; then
#   spark-submit --master spark://127.0.0.1:$(CLUSTER_PORT) jobs/pipeline.py --env standalone
cluster-up: setup $(STAMPS)/executor-venv
	infra/spark/spark-cluster start $(CLUSTER_DIR) $(CLUSTER_PORT) $(CLUSTER_WORKERS) $(CLUSTER_CORES) $(CLUSTER_MEMORY)

cluster-down:
	infra/spark/spark-cluster stop $(CLUSTER_DIR)

# A metastore server that several jobs on one lakehouse share (LAKEHOUSE_METASTORE_URL; see README).
metastore-up: $(STAMPS)/jars
	infra/metastore/metastore-server start $(METASTORE_DIR) $(METASTORE_PORT)

metastore-down:
	infra/metastore/metastore-server stop $(METASTORE_DIR)

bench: setup
	LAKEHOUSE_HMAC_KEY="$${LAKEHOUSE_HMAC_KEY:-$(DEMO_KEY)}" $(BIN)/python bench/scale/run_bench.py \
	  --people $(BENCH_PEOPLE) --repeats $(BENCH_REPEATS) $(BENCH_ARGS)

bench-er: setup
	bench/er/splink/setup.sh
	LAKEHOUSE_HMAC_KEY="$${LAKEHOUSE_HMAC_KEY:-$(DEMO_KEY)}" $(BIN)/python bench/er/run_bench.py \
	  --people $(BENCH_ER_PEOPLE) --repeats $(BENCH_ER_REPEATS) $(BENCH_ER_ARGS)

# BI query benchmark (bench/bi/run_bench.py): the dashboard queries of bench/bi/queries.sql over the Thrift server.
# Without BENCH_BI_PEOPLE it reads the lakehouse of the last `make run`; with it, it builds one of that size first.
BENCH_BI_PEOPLE  ?=
BENCH_BI_REPEATS ?= 5
BENCH_BI_ARGS    ?=
BENCH_BI_RESULTS ?= bench/bi/results/$(if $(BENCH_BI_PEOPLE),people-$(BENCH_BI_PEOPLE),default)

bench-bi: setup
	LAKEHOUSE_HMAC_KEY="$${LAKEHOUSE_HMAC_KEY:-$(DEMO_KEY)}" $(BIN)/python bench/bi/run_bench.py --env $(ENV) \
	  --repeats $(BENCH_BI_REPEATS) --results $(BENCH_BI_RESULTS) \
	  $(if $(BENCH_BI_PEOPLE),--people $(BENCH_BI_PEOPLE) --label "$(BENCH_BI_PEOPLE) people",--label "make run ($(PEOPLE) people)") \
	  $(if $(BENCH_BI_WORK),--work $(BENCH_BI_WORK)) $(BENCH_BI_ARGS)
