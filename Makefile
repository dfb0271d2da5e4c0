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
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
E2E       := $(filter-out tests/e2e/lib.sh,$(wildcard tests/e2e/*.sh))

.PHONY: all deps check unit e2e demo install uninstall clean asan format format-check bench fuzz \
        sim container-check

all: drender

deps:
	@scripts/install-deps.sh

drender: $(BUILD)/drender
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/drender: $(BUILD)/main.o $(LIB_OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: src/%.c $(wildcard include/*.h) $(BUILD)/driver_py.h | $(BUILD)
	$(CC) $(CFLAGS) -c -o $@ $<

# The Blender-side driver is embedded in the binary as a C string.
$(BUILD)/driver_py.h: src/driver.py scripts/embed.sh | $(BUILD)
	scripts/embed.sh dr_driver_py < $< > $@.tmp && mv $@.tmp $@

# So is the dashboard (src/ui/: index.html, app.js, style.css), served by dr_http at / and /ui/.
UI_HDRS := $(BUILD)/ui_index_html.h $(BUILD)/ui_app_js.h $(BUILD)/ui_style_css.h
$(BUILD)/dr_http.o: $(UI_HDRS)
$(BUILD)/ui_index_html.h: src/ui/index.html scripts/embed.sh | $(BUILD)
	scripts/embed.sh dr_ui_index_html < $< > $@.tmp && mv $@.tmp $@
$(BUILD)/ui_app_js.h: src/ui/app.js scripts/embed.sh | $(BUILD)
	scripts/embed.sh dr_ui_app_js < $< > $@.tmp && mv $@.tmp $@
$(BUILD)/ui_style_css.h: src/ui/style.css scripts/embed.sh | $(BUILD)
	scripts/embed.sh dr_ui_style_css < $< > $@.tmp && mv $@.tmp $@

$(BUILD):
	mkdir -p $(BUILD)/tests

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(LIB_OBJS)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

unit: $(UNIT_BINS)

# dr_assets_pack on the command line, for tests/e2e/assets.sh (which builds it when missing).
$(BUILD)/tests/dr-pack: tests/fixtures/pack.c $(LIB_OBJS)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

# The virtual-time farm (bench/sim/): simulated render nodes driving the real scheduler.
SIM_SRCS = bench/sim/sim.c bench/sim/sim.h
sim: $(BUILD)/drender-sim
$(BUILD)/drender-sim: bench/sim/main.c $(SIM_SRCS) $(LIB_OBJS)
	$(CC) $(CFLAGS) -Ibench/sim -o $@ bench/sim/main.c bench/sim/sim.c $(LIB_OBJS) $(LDLIBS)
$(BUILD)/tests/test_sim: tests/unit/test_sim.c $(SIM_SRCS) $(wildcard tests/unit/*.h) $(LIB_OBJS)
	$(CC) $(CFLAGS) -Ibench/sim -o $@ $< bench/sim/sim.c $(LIB_OBJS) $(LDLIBS)

# Rank 0's dispatch ceiling (bench/dispatch-ceiling.sh): the real rank-0 objects and instant
# render nodes over MPI.
$(BUILD)/dr-ceiling: bench/ceiling/ceiling.c $(LIB_OBJS)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

# Unit tests (C, TAP) and end-to-end tests (shell, TAP), all through prove.
check: deps
	$(MAKE) all unit
	DRENDER=$(CURDIR)/drender prove --exec /usr/bin/env $(UNIT_BINS) $(E2E)

# The image and the Compose cluster under podman only (make check runs it too, and it skips
# itself, saying why, where podman cannot run a container). See tests/e2e/container.sh.
container-check: deps
	prove -v --exec /usr/bin/env tests/e2e/container.sh

demo: deps
	$(MAKE) all
	scripts/demo.sh

bench: deps
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
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" build-asan/drender unit
	ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:intercept_tls_get_addr=0 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	OMPI_MCA_mca_base_component_disable_dlclose=1 DRENDER=$(CURDIR)/build-asan/drender DR_E2E_FAST_ONLY=1 \
		prove --exec /usr/bin/env $(patsubst $(BUILD)/%,build-asan/%,$(UNIT_BINS)) $(E2E)

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
