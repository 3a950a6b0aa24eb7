PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install browser postgres test lint demo bench create-cost clean
BROWSERS := chromium chromium-browser google-chrome google-chrome-stable

install: browser postgres
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@# An editable install leaves our modules uncompiled; with PYTHONDONTWRITEBYTECODE set they
	@# would be compiled again at every start (80 ms of CPU per command).
	$(BIN)/python -m compileall -q -f batchrun bench

# Debian's chromium, for the gallery's browser test (tests/test_gallery.py drives it with
# playwright); installed with apt-get when missing and we are root, else the test says how.
browser:
	@found=; for b in $(BROWSERS); do command -v $$b >/dev/null 2>&1 && found=$$b; done; \
	if [ -n "$$found" ]; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium (for the gallery's browser test)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
			>/dev/null || echo "warning: apt-get could not install chromium"; \
	else \
		echo "note: no Chromium here; the gallery's browser test is skipped (and fails in CI)." \
			"Install it as root: apt-get install chromium"; \
	fi

# The PostgreSQL server the journal tests start a throwaway cluster of (tests/support/postgres.py):
# Debian's postgresql, installed with apt-get when no /usr/lib/postgresql/*/bin/initdb is there
# and we are root, else the tests say how (they are skipped, and fail in CI).
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's postgresql (for the PostgreSQL journal's tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends postgresql >/dev/null \
			|| echo "warning: apt-get could not install postgresql"; \
	else \
		echo "note: no PostgreSQL server here; its tests are skipped (and fail in CI)." \
			"Install it as root: apt-get install postgresql"; \
	fi

test:
	$(BIN)/pytest -q

lint:
	$(BIN)/ruff check batchrun tests bench
	$(BIN)/ruff format --check batchrun tests bench
	$(BIN)/mypy

demo:
	$(BIN)/python -m batchrun.demo

bench:
	$(BIN)/python -m compileall -q -f batchrun bench
	$(BIN)/python -m bench

create-cost:  # instructions per create under callgrind (needs valgrind): compares client builds
	$(BIN)/python -m compileall -q -f batchrun bench
	$(BIN)/python -m bench.create_cost

clean:
	rm -rf $(VENV) .batchrun demo-output bench/results
