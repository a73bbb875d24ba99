# The two set-up commands: `make demo` and `make test`. Each makes .venv and installs what it
# needs (Debian packages too, when run as root) before it runs.
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
# Every Debian package a test starts a program of (tests/test_system_packages.py keeps this
# list complete), and the ones the demo needs (none: it runs hakeeper's own processes only).
DEB_PKGS := etcd-server etcd-client resource-agents fence-agents memcached iproute2 arping nginx curl openssl pacemaker-common systemd chromium chromium-driver postgresql postgresql-15 postgresql-client-15 resource-agents-paf msmtp pacemaker-resource-agents libxml2-utils
DEMO_PKGS :=
# The anchors the benchmarks measure in the same run (not needed by the tests).
BENCH_PKGS := haproxy wrk keepalived redis-server redis-tools redis-sentinel libmemcached-tools gcc patroni

.PHONY: demo test nemesis lint typecheck unit bench bytecode system-deps demo-deps bench-deps debian-packages clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Byte-compiles the source (only what changed since the last time). An editable install is
# not compiled, and where PYTHONDONTWRITEBYTECODE is set (this CI's machines) every process
# (each lab node, each CLI call) compiled ~300 modules again: 0.55 s of its 2.2 s start.
bytecode: $(STAMP)
	$(PY) -m compileall -q -j 0 src

# Installs the real servers the tests start (etcd). Needs root; without it the tests that
# need a missing server say so and skip, except under CI where they fail.
system-deps:
	@$(MAKE) --no-print-directory debian-packages PKGS="$(DEB_PKGS)"

demo-deps:
	@$(MAKE) --no-print-directory debian-packages PKGS="$(DEMO_PKGS)"

bench-deps:
	@$(MAKE) --no-print-directory debian-packages PKGS="$(DEB_PKGS) $(BENCH_PKGS)"

debian-packages:
	@missing=""; for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "not root: skipping Debian packages$$missing (tests needing them will skip)"; fi; \
	fi

demo: $(STAMP) bytecode demo-deps
	$(VENV)/bin/hakeeper demo --no-watch

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest -q -m "not slow"

# Two processes, one test file each at a time (a file's module-scoped cluster stays in one
# process): most tests wait on real clusters, so two share the two cores well. The slowest
# tests are listed at the end: the suite must stay well under 15 minutes.
test: $(STAMP) bytecode system-deps lint typecheck
	$(VENV)/bin/pytest -q -n 2 --dist loadfile --durations=25

# The nemesis's 2-minute run alone (it is part of `make test` too).
nemesis: $(STAMP) bytecode system-deps
	$(VENV)/bin/pytest -q tests/lab/test_nemesis.py

bench: $(STAMP) bytecode bench-deps
	$(PY) benchmarks/coord_failover.py
	$(PY) benchmarks/failover_loopback.py
	$(PY) benchmarks/sessions_vs_memcached.py
	$(PY) benchmarks/sessions_failover_vs_sentinel.py
	$(PY) benchmarks/balancer_vs_haproxy.py
	$(PY) benchmarks/vip_failover_vs_keepalived.py
	$(PY) benchmarks/backup_vs_etcd_redis.py
	$(PY) benchmarks/api_load.py
	$(PY) benchmarks/postgres_failover.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
