# clipmod — build, test, sanitise, benchmark and install.
#   make            build/libclipmod.a, build/libclipmod.so and build/clipmod (portable x86-64-v3)
#   make NATIVE=1   the same with -march=native (local builds; docs/install.md)
#   make test       build and run every tests/test_*.c (+ tests/test_*.sh); ends with "N passed, N failed"
#   make asan       the same tests under AddressSanitizer + UBSan (build-asan/)
#   make bench      benchmarks (bench/bench_*.c), figures against a same-run baseline, then
#                   default vs NATIVE=1 kernels in one interleaved run (scripts/bench-native.sh)
#   make demo       the embedded default job (see README)
#   make fuzz       libFuzzer targets (tests/fuzz/fuzz_*.c, clang) into build-fuzz/, each run
#                   FUZZ_SECONDS (default 20) over its corpus; fails on any crash (docs/fuzzing.md)
#   make install PREFIX=/usr/local [DESTDIR=...]   /   make uninstall   (docs/install.md)
# Sources are found by wildcard: a new file under src/<part>/ or tests/ needs no Makefile edit.

BUILD    ?= build
CC       ?= cc
OPT      ?= -O3
EXTRA    ?=
LDEXTRA  ?=

# ---- version: one place, CLIPMOD_VERSION in include/clipmod.h (soname, clipmod.pc, --version) ----
VERSION  := $(shell sed -n 's/^\#define CLIPMOD_VERSION "\([0-9][0-9.]*\)".*/\1/p' include/clipmod.h)
MAJOR    := $(firstword $(subst ., ,$(VERSION)))
SONAME   := libclipmod.so.$(MAJOR)

# ---- target CPU (docs/install.md): the default runs on any x86-64 with AVX2/FMA (x86-64-v3); the
# hot loops marked CM_HOT (src/kernels/vecmath.h) carry an AVX-512 clone picked at load time, and
# OpenBLAS / oneDNN dispatch themselves. NATIVE=1: -march=native. MARCH= overrides both.
ifeq ($(NATIVE),1)
MARCH    ?= -march=native
else ifneq ($(filter x86_64-%,$(shell $(CC) -dumpmachine)),)
MARCH    ?= -march=x86-64-v3
else
MARCH    ?=
endif

# ---- dependencies: compile and link flags from pkg-config where Debian ships a .pc; OpenBLAS is
# the OpenMP build (its own pkgconfig folder first); oneDNN has no .pc (DNNL_LIBS) ------------------
MULTIARCH  := $(shell $(CC) -print-multiarch 2>/dev/null)
PKG_CONFIG ?= pkg-config
# ompi-c: Open MPI (data-parallel training), always linked, initialised only under mpirun/srun (src/dist)
PC_DEPS    := openblas libjpeg libpng libwebp libzip zlib libcjson libutf8proc libcurl libmicrohttpd libcrypto ompi-c
PC         := PKG_CONFIG_PATH=/usr/lib/$(MULTIARCH)/openblas-openmp/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH)) $(PKG_CONFIG)
DEP_CFLAGS := $(shell $(PC) --cflags $(PC_DEPS) 2>/dev/null)
DEP_LIBS   := $(shell $(PC) --libs $(PC_DEPS) 2>/dev/null)
DNNL_LIBS  := -ldnnl
ifeq ($(DEP_LIBS),)
ifeq ($(filter clean uninstall,$(MAKECMDGOALS)),)
$(error pkg-config cannot find all of: $(PC_DEPS) (run: sh scripts/install-deps.sh))
endif
endif

# Not -ffast-math: the loss guards need isfinite(). -fno-math-errno lets GCC use libmvec for
# expf/erff inside `#pragma omp simd` loops (DESIGN §10). -fPIC: the same objects make the static
# and the shared library; -fvisibility=hidden: only CLIPMOD_API functions (include/clipmod.h) are
# exported from libclipmod.so.
CFLAGS   := $(OPT) $(MARCH) -g $(EXTRA) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -fno-math-errno -fopenmp \
            -fPIC -fvisibility=hidden -Iinclude -Isrc $(DEP_CFLAGS)
LDLIBS   := $(LDEXTRA) $(DEP_LIBS) $(DNNL_LIBS) -lpthread -lm -fopenmp
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

.PHONY: all test asan bench bench-native demo clean install uninstall fuzz fuzz-build
all: $(BUILD)/libclipmod.a $(BUILD)/libclipmod.so $(BUILD)/clipmod $(EXAMPLES)

# objects depend on the flags they were built with: a change of OPT, MARCH, NATIVE, EXTRA rebuilds
$(BUILD)/.cflags: FORCE
	@mkdir -p $(BUILD); echo '$(CFLAGS)' | cmp -s - $@ || echo '$(CFLAGS)' > $@
.PHONY: FORCE

$(BUILD)/%.o: %.c $(BUILD)/.cflags
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libclipmod.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# ---- shared library: libclipmod.so.VERSION, soname libclipmod.so.MAJOR, unversioned link ----------
# Exports: the CLIPMOD_API functions (-fvisibility=hidden hides the rest); the version script also
# hides the ifunc symbols of the CM_HOT clones, which GCC leaves global despite -fvisibility=hidden.
$(BUILD)/libclipmod.map:
	@mkdir -p $(dir $@)
	@echo '{ global: clipmod_*; local: *; };' > $@

$(BUILD)/libclipmod.so.$(VERSION): $(LIB_OBJ) $(BUILD)/libclipmod.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--no-undefined -Wl,--version-script=$(BUILD)/libclipmod.map $(CFLAGS) \
	    -o $@ $(LIB_OBJ) $(LDLIBS)

$(BUILD)/libclipmod.so: $(BUILD)/libclipmod.so.$(VERSION)
	ln -sf libclipmod.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

$(BUILD)/clipmod: $(CLI_OBJ) $(BUILD)/libclipmod.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# the kernel lab (tests/kernel_lab/*.c: the double-precision references) is linked into every test
# and benchmark, never into the library
LAB_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard tests/kernel_lab/*.c)))

$(BUILD)/tests/%: tests/%.c tests/testlib.h $(BUILD)/libclipmod.a $(LAB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(LAB_OBJ) $(BUILD)/libclipmod.a $(LDLIBS)

# test_session_alloc counts the library's allocations through the linker's --wrap.
$(BUILD)/tests/test_session_alloc: LDLIBS := -Wl,--wrap=cm_malloc -Wl,--wrap=cm_calloc $(LDLIBS)

# Examples see the public header only (no -Isrc): they prove include/clipmod.h is enough.
$(BUILD)/examples/%: examples/%.c include/clipmod.h $(BUILD)/libclipmod.a
	@mkdir -p $(dir $@)
	$(CC) $(OPT) $(MARCH) -g $(EXTRA) -std=c11 -Wall -Wextra -Iinclude -o $@ $< $(BUILD)/libclipmod.a $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libclipmod.a $(LAB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(LAB_OBJ) $(BUILD)/libclipmod.a $(LDLIBS)

# The test runner needs build/clipmod too (CLI tests call it as outside tests do). tests/test_*.sh
# are shell tests (run with sh; they get BUILD, MARCH, OPT and CC from here).
SH_TESTS := $(sort $(wildcard tests/test_*.sh))
test: all $(TESTS) $(BENCHES)   # the benches are built (not run) so that an interface change cannot break them unseen
	@BUILD=$(BUILD) CLIPMOD_SANITIZED=$(CLIPMOD_SANITIZED) MARCH="$(MARCH)" OPT="$(OPT)" CC="$(CC)" sh tests/run_tests.sh $(TESTS) $(SH_TESTS)

asan:
	$(MAKE) BUILD=build-asan OPT="-O1" EXTRA="$(SAN)" LDEXTRA="$(SAN)" CLIPMOD_SANITIZED=1 test

bench: all $(BENCHES)
	@for b in $(BENCHES); do echo "== $$b"; $$b || exit 1; done
	@sh scripts/bench-native.sh

# default (build/) vs NATIVE=1 (build-native/) kernels, interleaved in one run
bench-native:
	@sh scripts/bench-native.sh

demo: all
	$(BUILD)/clipmod demo

clean:
	rm -rf build build-asan build-native build-fuzz

# ---- install (docs/install.md): PREFIX, DESTDIR (staged, as Debian packaging does) -------------------
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     := $(PREFIX)/bin
LIBDIR     := $(PREFIX)/lib
INCLUDEDIR := $(PREFIX)/include
DATADIR    := $(PREFIX)/share/clipmod
MANDIR     := $(PREFIX)/share/man
PYDIR      := $(PREFIX)/lib/python3/dist-packages
VOCAB_FILES:= assets/bpe_simple_vocab_16e6.txt.gz assets/bpe_simple_vocab_16e6.LICENSE.md

# the man page comes from the CLI's own option tables (clipmod --man), so it cannot drift
$(BUILD)/clipmod.1: $(BUILD)/clipmod
	$(BUILD)/clipmod --man > $@.tmp && mv $@.tmp $@

# relocatable: prefix from the .pc file's own folder (pkg-config's pcfiledir)
$(BUILD)/clipmod.pc: include/clipmod.h Makefile
	@mkdir -p $(dir $@)
	@{ echo 'prefix=$${pcfiledir}/../..'; echo 'libdir=$${prefix}/lib'; echo 'includedir=$${prefix}/include'; \
	   echo; echo 'Name: clipmod'; echo 'Description: OpenCLIP-exact CLIP image+text classifier (C library)'; \
	   echo 'Version: $(VERSION)'; echo 'Requires.private: $(PC_DEPS)'; \
	   echo 'Libs: -L$${libdir} -lclipmod'; echo 'Libs.private: $(DNNL_LIBS) -lpthread -lm -fopenmp'; \
	   echo 'Cflags: -I$${includedir}'; } > $@

install: all $(BUILD)/clipmod.1 $(BUILD)/clipmod.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(DATADIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(BUILD)/clipmod $(DESTDIR)$(BINDIR)/clipmod
	install -m 755 $(BUILD)/libclipmod.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libclipmod.so.$(VERSION)
	ln -sf libclipmod.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libclipmod.so
	install -m 644 $(BUILD)/libclipmod.a $(DESTDIR)$(LIBDIR)/libclipmod.a
	install -m 644 $(BUILD)/clipmod.pc $(DESTDIR)$(LIBDIR)/pkgconfig/clipmod.pc
	install -m 644 include/clipmod.h $(DESTDIR)$(INCLUDEDIR)/clipmod.h
	install -m 644 $(VOCAB_FILES) $(DESTDIR)$(DATADIR)/
	install -m 644 $(BUILD)/clipmod.1 $(DESTDIR)$(MANDIR)/man1/clipmod.1
	install -d $(DESTDIR)$(PYDIR)/clipmod
	install -m 644 python/clipmod/__init__.py $(DESTDIR)$(PYDIR)/clipmod/__init__.py

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/clipmod $(DESTDIR)$(LIBDIR)/libclipmod.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libclipmod.so $(DESTDIR)$(LIBDIR)/libclipmod.a $(DESTDIR)$(LIBDIR)/pkgconfig/clipmod.pc \
	      $(DESTDIR)$(INCLUDEDIR)/clipmod.h $(addprefix $(DESTDIR)$(DATADIR)/,$(notdir $(VOCAB_FILES))) \
	      $(DESTDIR)$(MANDIR)/man1/clipmod.1 $(DESTDIR)$(PYDIR)/clipmod/__init__.py
	-rm -rf $(DESTDIR)$(PYDIR)/clipmod/__pycache__
	-rmdir $(DESTDIR)$(DATADIR) $(DESTDIR)$(PYDIR)/clipmod 2>/dev/null || true

# ---- fuzzing (docs/fuzzing.md) -------------------------------------------------------------
# The library is rebuilt with clang, coverage + ASan + UBSan, and without -fopenmp (the pragmas
# are ignored: the parsers run serially). omp_* calls resolve to LLVM's libomp and
# openblas_set_num_threads to the serial OpenBLAS, so no fuzz binary loads gcc's libgomp; oneDNN
# is not linked (see FUZZ_LIBOBJ; the linker takes only the objects a target needs from the archive).
FUZZ_BUILD   := build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 20
FUZZ_RUNFLAGS?=
FUZZ_BLAS    := /usr/lib/x86_64-linux-gnu/openblas-serial
FUZZ_CFLAGS  := -O1 -g -march=native -std=c11 -D_GNU_SOURCE -fno-math-errno -fno-omit-frame-pointer \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined -Wall -Wno-unused-parameter \
                -Wno-source-uses-openmp -Wno-unknown-pragmas -Iinclude -Isrc -Itests/fuzz \
                $(shell $(PKG_CONFIG) --cflags ompi-c 2>/dev/null)
FUZZ_LDLIBS  := -L$(FUZZ_BLAS) -l:libopenblas.so.0 -Wl,-rpath,$(FUZZ_BLAS) -L/usr/lib/llvm-14/lib -lomp \
                -Wl,-rpath,/usr/lib/llvm-14/lib -ljpeg -lpng -lwebp -lzip -lz -lcjson -lutf8proc -lcurl \
                -lcrypto $(shell $(PKG_CONFIG) --libs ompi-c 2>/dev/null) -lpthread -lm
FUZZ_SRC     := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
# The library plus src/cli except main.c (args.c, and whatever command code a target drives);
# tests/fuzz/stub_dnnl.c replaces src/kernels/dnnl_matmul.c (oneDNN needs libgomp; no target runs
# a matrix product, and reaching one aborts).
FUZZ_LIBOBJ  := $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(filter-out src/kernels/dnnl_matmul.c,$(LIB_SRC)) \
                $(filter-out src/cli/main.c,$(CLI_SRC)) tests/fuzz/stub_dnnl.c)

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

-include $(LIB_OBJ:.o=.d) $(LAB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(FUZZ_LIBOBJ:.o=.d)
