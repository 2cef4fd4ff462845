# The two commands a fresh machine needs: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXAMPLE := examples/hyp-lto

.PHONY: all deps toolchain code-server real-kernel demo test bench fuzz clean

all: test

toolchain:
	@bash scripts/ensure-toolchain.sh

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# code-server (a real VS Code) and Chromium for the extension's end-to-end test.
code-server:
	@bash vscode-client/scripts/install-code-server.sh >/dev/null

deps: toolchain $(VENV)/.installed

# Real arm64 kernels for tests/e2e/test_real_kernel.py (Clang ThinLTO + ld.lld, GCC + GNU ld, and a
# failing overflow variant), built once and cached under $REACHLS_CACHE (default ~/.cache/reachls)/kernel.
real-kernel: toolchain
	@bash scripts/build-real-kernel.sh

demo: deps
	$(MAKE) -s -C $(EXAMPLE) VARIANT=overflow vmlinux.o
	-$(MAKE) -s -C $(EXAMPLE) VARIANT=overflow vmlinux
	@echo
	@echo "== reachls scan $(EXAMPLE)/out/overflow"
	$(BIN)/reachls scan $(EXAMPLE)/out/overflow

test: deps code-server real-kernel
	$(BIN)/python -m pytest

# A long fuzz campaign (tests/fuzz): FUZZ_EXAMPLES cases per property, seed FUZZ_SEED; prints the
# table of outcomes per family. Reproducers it finds go to tests/fuzz/regressions/<family>/.
FUZZ_EXAMPLES ?= 2500
FUZZ_SEED ?= 20261129
fuzz: deps
	rm -f fuzz-tally.jsonl
	REACHLS_FUZZ_PROFILE=campaign REACHLS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) REACHLS_FUZZ_TALLY=$(CURDIR)/fuzz-tally.jsonl \
		$(BIN)/python -m pytest tests/fuzz -q --hypothesis-seed=$(FUZZ_SEED); status=$$?; \
		$(BIN)/python tests/fuzz/contract.py fuzz-tally.jsonl; exit $$status

# Issue 9's goals and the scaling table (bench/out/results.md); inputs are generated and cached
# under $REACHLS_CACHE on first use. BENCH_ARGS=--quick measures the two small sizes only.
bench: deps real-kernel
	$(BIN)/python bench/run_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/decode_bench.py
	$(BIN)/python bench/lsp_latency.py

clean:
	$(MAKE) -C $(EXAMPLE) clean
	rm -rf bench/out
