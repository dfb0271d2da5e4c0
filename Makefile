# drender: build, test, demo, install. See README.md.
CC        = mpicc
PKGS      = libcjson libmicrohttpd sqlite3
PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
EXTRA_CFLAGS ?=
EXTRA_LDFLAGS ?=
VERSION   = 0.1.0

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS   ?= -O2 -g
override CFLAGS += -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -DDR_VERSION='"$(VERSION)"' \
                   -Iinclude -I$(BUILD) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
override LDLIBS += $(PKG_LIBS) -lnettle -lm -lpthread $(EXTRA_LDFLAGS)

SRCS      := $(wildcard src/*.c)
LIB_OBJS  := $(patsubst src/%.c,$(BUILD)/%.o,$(filter-out src/main.c,$(SRCS)))
# Every module but main.c, archived: drender, the unit tests, the simulator and the ceiling link it
# and take only the objects they use.
LIB       := $(BUILD)/libdrender.a
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
# Every tests/e2e/*.sh is a test script, except the helper library.
E2E       := $(filter-out tests/e2e/lib.sh,$(wildcard tests/e2e/*.sh))
# make quick: the fake-Blender end-to-end tests of the core paths (batch, HTTP, launcher, faults).
E2E_QUICK := $(addprefix tests/e2e/,lib-selftest.sh core.sh badinput.sh launch.sh http.sh faults.sh \
               nodeloss.sh jobsdb.sh)
# Test scripts run side by side (tests/e2e/run-suite); each one's names, ports and directories
# are its own. E2E_JOBS=1 runs them one after another. 4 on 2 cores: the suite mostly waits, but
# the real-Blender scripts need the CPUs, and timing assertions lose their margins past that.
E2E_JOBS  ?= 4

.PHONY: all deps deps-render check quick unit unit-bins e2e demo install uninstall clean asan \
        format format-check bench fuzz sim container-check

all: drender

# The packages a use needs (scripts/install-deps.sh SET): rendering only, or everything testing needs.
deps:
	@scripts/install-deps.sh test
deps-render:
	@scripts/install-deps.sh render

drender: $(BUILD)/drender
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/drender: $(BUILD)/main.o $(LIB)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(LIB): $(LIB_OBJS)
	rm -f $@.tmp && $(AR) rcs $@.tmp $^ && mv -f $@.tmp $@

# Header dependencies come from the compiler (-MMD -MP: build/*.d, read below). The generated
# headers are made before any object is compiled (order-only); once an object has been built, its
# .d file says which of them it includes. An object without its .d file (built before this rule)
# is built again.
GEN_HDRS := $(BUILD)/driver_py.h $(BUILD)/ui_index_html.h $(BUILD)/ui_app_js.h $(BUILD)/ui_style_css.h
$(BUILD)/%.o: src/%.c $(BUILD)/%.d | $(GEN_HDRS) $(BUILD)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<
OBJ_DEPS := $(patsubst %.o,%.d,$(LIB_OBJS) $(BUILD)/main.o)
$(OBJ_DEPS): ;

# The Blender-side driver is embedded in the binary as a C string.
$(BUILD)/driver_py.h: src/driver.py scripts/embed.sh | $(BUILD)
	scripts/embed.sh dr_driver_py < $< > $@.tmp && mv $@.tmp $@

# So is the dashboard (src/ui/: index.html, app.js, style.css), served by dr_http at / and /ui/.
$(BUILD)/ui_index_html.h: src/ui/index.html scripts/embed.sh | $(BUILD)
	scripts/embed.sh dr_ui_index_html < $< > $@.tmp && mv $@.tmp $@
$(BUILD)/ui_app_js.h: src/ui/app.js scripts/embed.sh | $(BUILD)
	scripts/embed.sh dr_ui_app_js < $< > $@.tmp && mv $@.tmp $@
$(BUILD)/ui_style_css.h: src/ui/style.css scripts/embed.sh | $(BUILD)
	scripts/embed.sh dr_ui_style_css < $< > $@.tmp && mv $@.tmp $@

$(BUILD):
	mkdir -p $(BUILD)/tests

# Programs of one source file (plus the library): their header dependencies land in
# $(BUILD)/tests/NAME.d (-MF).
$(BUILD)/tests/%: tests/unit/%.c $(LIB) | $(GEN_HDRS) $(BUILD)
	$(CC) $(CFLAGS) -MMD -MP -MF $@.d -MT $@ -o $@ $< $(LIB) $(LDLIBS)

# make unit builds the unit tests and runs them; unit-bins only builds them.
unit-bins: $(UNIT_BINS)
unit: unit-bins
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp prove --exec /usr/bin/env $(UNIT_BINS)

# dr_assets_pack on the command line, for tests/e2e/assets.sh (which builds it when missing).
$(BUILD)/tests/dr-pack: tests/fixtures/pack.c $(LIB) | $(GEN_HDRS) $(BUILD)
	$(CC) $(CFLAGS) -MMD -MP -MF $@.d -MT $@ -o $@ $< $(LIB) $(LDLIBS)

# The virtual-time farm (bench/sim/): simulated render nodes driving the real scheduler.
sim: $(BUILD)/drender-sim
$(BUILD)/drender-sim: bench/sim/main.c bench/sim/sim.c $(LIB) | $(GEN_HDRS) $(BUILD)
	$(CC) $(CFLAGS) -Ibench/sim -MMD -MP -MF $@.d -MT $@ -o $@ bench/sim/main.c bench/sim/sim.c \
		$(LIB) $(LDLIBS)
$(BUILD)/tests/test_sim: tests/unit/test_sim.c bench/sim/sim.c $(LIB) | $(GEN_HDRS) $(BUILD)
	$(CC) $(CFLAGS) -Ibench/sim -MMD -MP -MF $@.d -MT $@ -o $@ $< bench/sim/sim.c $(LIB) $(LDLIBS)

# Rank 0's dispatch ceiling (bench/dispatch-ceiling.sh): the real rank-0 objects and instant
# render nodes over MPI.
$(BUILD)/dr-ceiling: bench/ceiling/ceiling.c $(LIB) | $(GEN_HDRS) $(BUILD)
	$(CC) $(CFLAGS) -MMD -MP -MF $@.d -MT $@ -o $@ $< $(LIB) $(LDLIBS)

-include $(wildcard $(BUILD)/*.d $(BUILD)/tests/*.d)

# Unit tests (C, TAP) and end-to-end tests (shell, TAP), all through prove, side by side
# (tests/e2e/run-suite: the slowest first; at the end, what was skipped and why, failing the run
# when a skip names a set-up step that was not done).
check: deps
	$(MAKE) all unit-bins
	DRENDER=$(CURDIR)/drender tests/e2e/run-suite -j $(E2E_JOBS) $(UNIT_BINS) $(E2E)

# The end-to-end tests alone.
e2e: all
	DRENDER=$(CURDIR)/drender tests/e2e/run-suite -j $(E2E_JOBS) $(E2E)

# The edit-test loop: unit tests and the core fake-Blender end-to-end tests (under 2 minutes).
quick: all unit-bins
	DRENDER=$(CURDIR)/drender tests/e2e/run-suite -j $(E2E_JOBS) $(UNIT_BINS) $(E2E_QUICK)

# The image and the Compose cluster under podman only (make check runs it too, and it skips
# itself, saying why, where podman cannot run a container). See tests/e2e/container.sh.
container-check: deps
	prove -v --exec /usr/bin/env tests/e2e/container.sh

demo: deps-render
	$(MAKE) all
	scripts/demo.sh

bench:
	@scripts/install-deps.sh bench
	$(MAKE) all
	bench/run.sh

install: drender
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 drender $(DESTDIR)$(PREFIX)/bin/drender
	install -m 0755 scripts/drender-rsh $(DESTDIR)$(PREFIX)/bin/drender-rsh
	install -m 0755 scripts/drender-mpirun $(DESTDIR)$(PREFIX)/bin/drender-mpirun
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 0644 docs/man/drender.1 docs/man/drender-mpirun.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 scripts/completion/drender.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/drender
	install -m 0644 scripts/completion/drender.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/drender-mpirun

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/drender $(DESTDIR)$(PREFIX)/bin/drender-rsh \
		$(DESTDIR)$(PREFIX)/bin/drender-mpirun
	rm -f $(DESTDIR)$(PREFIX)/share/man/man1/drender.1 $(DESTDIR)$(PREFIX)/share/man/man1/drender-mpirun.1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/drender \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/drender-mpirun

# AddressSanitizer + UBSan build in build-asan/, then the unit tests and the fake-Blender e2e tests.
# Open MPI keeps allocations past MPI_Finalize: tests/lsan.supp names its libraries (full stacks and
# no dlclose of its components, so that they can be matched); leaks in our code still fail.
asan: deps
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" build-asan/drender unit-bins
	ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:intercept_tls_get_addr=0 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	OMPI_MCA_mca_base_component_disable_dlclose=1 DRENDER=$(CURDIR)/build-asan/drender DR_E2E_FAST_ONLY=1 \
		tests/e2e/run-suite -j $(E2E_JOBS) $(patsubst $(BUILD)/%,build-asan/%,$(UNIT_BINS)) $(E2E)

# The request-body fuzzer (libFuzzer); make check runs it for 10 s, this for FUZZ_SECONDS (60).
fuzz: deps
	tests/fuzz/run.sh $(or $(FUZZ_SECONDS),60)

FORMAT_FILES = $(wildcard src/*.c include/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c bench/sim/*.[ch] bench/ceiling/*.c)
format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf build build-asan drender
