# clipmod — build, test, sanitise and benchmark.
#   make            build/libclipmod.a and build/clipmod
#   make test       build and run every tests/test_*.c; ends with "N passed, N failed"
#   make asan       the same tests under AddressSanitizer + UBSan (build-asan/)
#   make bench      benchmarks (bench/bench_*.c), figures against a same-run baseline
#   make demo       the embedded default job (see README)
#   make fuzz       libFuzzer targets (tests/fuzz/fuzz_*.c, clang) into build-fuzz/, each run
#                   FUZZ_SECONDS (default 20) over its corpus; fails on any crash (docs/fuzzing.md)
# Sources are found by wildcard: a new file under src/<part>/ or tests/ needs no Makefile edit.

BUILD    ?= build
CC       ?= cc
OPT      ?= -O3 -march=native
# Not -ffast-math: the loss guards need isfinite(). -fno-math-errno lets GCC use libmvec for
# expf/erff inside `#pragma omp simd` loops (DESIGN §10).
EXTRA    ?=
LDEXTRA  ?=
CFLAGS   := $(OPT) -g $(EXTRA) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -fno-math-errno -fopenmp \
            -Iinclude -Isrc -I/usr/include/x86_64-linux-gnu/openblas-openmp
LDLIBS   := $(LDEXTRA) -L/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -ljpeg -lpng -lwebp -lzip -lz \
            -lcjson -lutf8proc -lcurl -lcrypto -ldnnl -lpthread -lm -fopenmp
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC  := $(sort $(wildcard src/*/*.c))
LIB_SRC  := $(filter-out src/cli/%,$(LIB_SRC))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
BENCH_SRC:= $(sort $(wildcard bench/bench_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCHES  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all test asan bench demo clean fuzz fuzz-build
all: $(BUILD)/libclipmod.a $(BUILD)/clipmod

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libclipmod.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/clipmod: $(CLI_OBJ) $(BUILD)/libclipmod.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/testlib.h $(BUILD)/libclipmod.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libclipmod.a $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libclipmod.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libclipmod.a $(LDLIBS)

# The test runner needs build/clipmod too (CLI tests call it as outside tests do).
test: all $(TESTS)
	@BUILD=$(BUILD) CLIPMOD_SANITIZED=$(CLIPMOD_SANITIZED) sh tests/run_tests.sh $(TESTS)

asan:
	$(MAKE) BUILD=build-asan OPT="-O1" EXTRA="$(SAN)" LDEXTRA="$(SAN)" CLIPMOD_SANITIZED=1 test

bench: all $(BENCHES)
	@for b in $(BENCHES); do echo "== $$b"; $$b || exit 1; done

demo: all
	$(BUILD)/clipmod demo

clean:
	rm -rf build build-asan build-fuzz

# ---- fuzzing (docs/fuzzing.md) -------------------------------------------------------------
# The library is rebuilt with clang, coverage + ASan + UBSan, and without -fopenmp (the pragmas
# are ignored: the parsers run serially). omp_* calls resolve to LLVM's libomp and
# openblas_set_num_threads to the serial OpenBLAS, so no fuzz binary loads gcc's libgomp; oneDNN
# is not linked (no fuzz target reaches a matrix product; the linker takes only the objects a
# target needs from the archive).
FUZZ_BUILD   := build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 20
FUZZ_RUNFLAGS?=
FUZZ_BLAS    := /usr/lib/x86_64-linux-gnu/openblas-serial
FUZZ_CFLAGS  := -O1 -g -march=native -std=c11 -D_GNU_SOURCE -fno-math-errno -fno-omit-frame-pointer \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined -Wall -Wno-unused-parameter \
                -Wno-source-uses-openmp -Wno-unknown-pragmas -Iinclude -Isrc -Itests/fuzz
FUZZ_LDLIBS  := -L$(FUZZ_BLAS) -l:libopenblas.so.0 -Wl,-rpath,$(FUZZ_BLAS) -L/usr/lib/llvm-14/lib -lomp \
                -Wl,-rpath,/usr/lib/llvm-14/lib -ljpeg -lpng -lwebp -lzip -lz -lcjson -lutf8proc -lcurl \
                -lcrypto -lpthread -lm
FUZZ_SRC     := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
# The library plus src/cli except main.c (args.c, and whatever command code a target drives).
FUZZ_LIBOBJ  := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o) $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(filter-out src/cli/main.c,$(CLI_SRC)))

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/libclipmod-fuzz.a: $(FUZZ_LIBOBJ)
	@rm -f $@
	@ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h $(FUZZ_BUILD)/libclipmod-fuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libclipmod-fuzz.a $(FUZZ_LDLIBS)

fuzz-build: $(FUZZ_BINS)

# Each target runs FUZZ_SECONDS over a scratch copy of its seed corpus (the committed corpus is
# not modified; new inputs land in build-fuzz/corpus/<name>). A crash leaves crash-* files in
# build-fuzz/artifacts/<name>/ and fails the target; all targets run, then the make fails.
fuzz: fuzz-build
	@failed=""; for b in $(FUZZ_BINS); do n=$${b#$(FUZZ_BUILD)/fuzz_}; \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$n $(FUZZ_BUILD)/artifacts/$$n; \
	  echo "== fuzz $$n ($(FUZZ_SECONDS) s)"; \
	  if $$b -max_total_time=$(FUZZ_SECONDS) -timeout=30 -close_fd_mask=3 -print_final_stats=1 \
	       -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$n/ $(FUZZ_RUNFLAGS) \
	       $(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n > $(FUZZ_BUILD)/fuzz_$$n.log 2>&1; then \
	    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+.*DONE' $(FUZZ_BUILD)/fuzz_$$n.log | tr '\n' ' '; echo; \
	  else echo "  CRASH in $$n: see $(FUZZ_BUILD)/fuzz_$$n.log and $(FUZZ_BUILD)/artifacts/$$n/"; \
	    tail -n 40 $(FUZZ_BUILD)/fuzz_$$n.log; failed="$$failed $$n"; fi; done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in:$$failed"; exit 1; fi; echo "fuzz: no crashes"

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(FUZZ_LIBOBJ:.o=.d)
