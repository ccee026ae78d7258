# clipmod — build, test, sanitise and benchmark.
#   make            build/libclipmod.a and build/clipmod
#   make test       build and run every tests/test_*.c; ends with "N passed, N failed"
#   make asan       the same tests under AddressSanitizer + UBSan (build-asan/)
#   make bench      benchmarks (bench/bench_*.c), figures against a same-run baseline
#   make demo       the embedded default job (see README)
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
EXAMPLE_SRC := $(sort $(wildcard examples/*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCHES  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
EXAMPLES := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)

.PHONY: all test asan bench demo clean
all: $(BUILD)/libclipmod.a $(BUILD)/clipmod $(EXAMPLES)

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

# test_session_alloc counts the library's allocations through the linker's --wrap.
$(BUILD)/tests/test_session_alloc: LDLIBS := -Wl,--wrap=cm_malloc -Wl,--wrap=cm_calloc $(LDLIBS)

# Examples see the public header only (no -Isrc): they prove include/clipmod.h is enough.
$(BUILD)/examples/%: examples/%.c include/clipmod.h $(BUILD)/libclipmod.a
	@mkdir -p $(dir $@)
	$(CC) $(OPT) -g $(EXTRA) -std=c11 -Wall -Wextra -Iinclude -o $@ $< $(BUILD)/libclipmod.a $(LDLIBS)

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
	rm -rf build build-asan

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
