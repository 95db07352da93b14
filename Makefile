# postern — build, test, lint, fuzz, demo and install. GNU make.
#
#   make              build build/posternd
#   make check        install missing packages, build, run unit and integration tests
#   make check SANITIZE=1   the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make demo         run the server with a throwaway directory on 127.0.0.1
#   make lint         cppcheck and clang-tidy, warnings are errors
#   make fuzz         build the libFuzzer targets (build/fuzz/)
#   make install PREFIX=/usr DESTDIR=/tmp/stage
#   make bench        postern against Dovecot, five workloads (bench/README.md); as root
#   make bench-smoke  a few seconds of each workload (for CI)

PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc/postern
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DESTDIR    ?=
PYTHON     ?= /usr/bin/python3
VERSION    := 0.1.0

PKGS := libevent libevent_pthreads gnutls ldap krb5-gssapi krb5 libgsasl sqlite3 gmime-3.0 jansson

ifeq ($(SANITIZE),1)
BUILD   ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
OPT     := -O1 -g
else
BUILD   ?= build
SANFLAGS :=
OPT     := -O2 -g
endif

CC      ?= cc
WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wformat=2
CFLAGS  ?= $(OPT)
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) $(SANFLAGS) -D_GNU_SOURCE -Iinclude \
             -DPOSTERN_VERSION='"$(VERSION)"' -DPOSTERN_SYSCONFDIR='"$(SYSCONFDIR)"' \
             $(shell pkg-config --cflags $(PKGS))
LIBS     = $(shell pkg-config --libs $(PKGS)) -llber -lresolv -lpthread
ALL_LDFLAGS = $(LDFLAGS) $(SANFLAGS)

LIB_SRCS := $(sort $(wildcard src/core/*.c src/net/*.c src/imap/*.c src/pop3/*.c src/directory/*.c \
                              src/auth/*.c src/policy/*.c src/audit/*.c src/store/*.c \
                              src/mime/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_SRCS := $(sort $(wildcard src/cli/*.c))
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)

.PHONY: all deps check check-unit check-integration demo lint format fuzz fuzz-smoke \
        install clean

all: $(BUILD)/posternd $(BUILD)/posternctl

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libpostern.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/posternd: $(BUILD)/obj/src/posternd.o $(BUILD)/libpostern.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/posternctl: $(CLI_OBJS) $(BUILD)/libpostern.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libpostern.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libpostern.a $(LIBS) -lcmocka

deps:
	@tools/deps.sh

# The whole suite: deps first (a fresh machine has none), then everything else in a new make
# so that pkg-config runs after the packages are there.
check: deps
	@$(MAKE) --no-print-directory check-unit fuzz-smoke check-integration

check-unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

check-integration: $(BUILD)/posternd $(BUILD)/posternctl
	POSTERND=$(abspath $(BUILD)/posternd) POSTERNCTL=$(abspath $(BUILD)/posternctl) \
	    $(PYTHON) -m pytest -q -ra tests/integration

demo: deps
	@$(MAKE) --no-print-directory all
	@$(PYTHON) tools/demo.py --posternd $(BUILD)/posternd --dir build/demo

lint: deps
	@$(MAKE) --no-print-directory lint-run

lint-run:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr --std=c11 -D_GNU_SOURCE -Iinclude --suppress=missingIncludeSystem \
	    src tests/unit tests/fuzz bench
	clang-tidy --quiet $(LIB_SRCS) $(CLI_SRCS) src/posternd.c $(wildcard bench/*.c) -- -std=gnu11 -D_GNU_SOURCE -Iinclude \
	    $(shell pkg-config --cflags $(PKGS))
	clang-format --dry-run --Werror $(wildcard src/*.c src/*/*.c src/*/*.h include/postern/*.h)

format:
	clang-format -i $(wildcard src/*.c src/*/*.c src/*/*.h include/postern/*.h tests/unit/*.c tests/fuzz/*.c)

# libFuzzer targets, built with clang: the library once (instrumented, without libFuzzer's
# main), then each target links what it exercises from it.
FUZZ_FLAGS = -std=gnu11 -g -O1 -D_GNU_SOURCE -Iinclude $(shell pkg-config --cflags $(PKGS))
FUZZ_OBJS := $(LIB_SRCS:%.c=build/fuzz/obj/%.o)
build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c $< -o $@
build/fuzz/libpostern.a: $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $^
build/fuzz/%: tests/fuzz/%.c build/fuzz/libpostern.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< build/fuzz/libpostern.a \
	    $(LIBS)

fuzz: $(FUZZ_BINS)

# A short run of every target over its committed corpus (make check); long runs are manual:
#   build/fuzz/fuzz_imap_command -max_total_time=600 tests/fuzz/corpus/imap_command
FUZZ_SECONDS ?= 20
fuzz-smoke: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do n=$$(basename $$f); c=tests/fuzz/corpus/$${n#fuzz_}; \
	    mkdir -p build/fuzz/work/$$n; echo "== $$n ($(FUZZ_SECONDS) s)"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 build/fuzz/work/$$n $$c \
	        2>build/fuzz/$$n.log || { tail -50 build/fuzz/$$n.log; exit 1; }; done

install: $(BUILD)/posternd $(BUILD)/posternctl
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(SYSCONFDIR)
	install -m 755 $(BUILD)/posternd $(DESTDIR)$(SBINDIR)/posternd
	install -m 755 $(BUILD)/posternctl $(DESTDIR)$(SBINDIR)/posternctl
	install -m 644 docs/postern.conf.5 $(DESTDIR)$(MANDIR)/man5/postern.conf.5
	install -m 644 docs/posternd.8 $(DESTDIR)$(MANDIR)/man8/posternd.8
	install -m 644 docs/posternctl.8 $(DESTDIR)$(MANDIR)/man8/posternctl.8
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|/usr/local/sbin/posternd|$(SBINDIR)/posternd|' \
	    -e 's|/etc/postern/postern.conf|$(SYSCONFDIR)/postern.conf|' \
	    conf/postern.service > $(DESTDIR)$(UNITDIR)/postern.service
	chmod 644 $(DESTDIR)$(UNITDIR)/postern.service
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/postern.conf ]; then \
	    install -m 640 conf/postern.conf $(DESTDIR)$(SYSCONFDIR)/postern.conf; fi

clean:
	rm -rf build

# Benchmarks against Dovecot (bench/README.md): not part of make check. The load generator
# is one program; bench/run starts slapd, postern and Dovecot and drives it.
.PHONY: bench bench-smoke
BENCH_SRCS := $(sort $(wildcard bench/*.c))
$(BUILD)/bench/postern-loadgen: $(BENCH_SRCS) bench/loadgen.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(BENCH_SRCS) $(shell pkg-config --libs libevent gnutls)

bench: deps
	@$(MAKE) --no-print-directory $(BUILD)/posternd $(BUILD)/bench/postern-loadgen
	$(PYTHON) bench/run --posternd $(BUILD)/posternd --loadgen $(BUILD)/bench/postern-loadgen

bench-smoke: deps
	@$(MAKE) --no-print-directory $(BUILD)/posternd $(BUILD)/bench/postern-loadgen
	$(PYTHON) bench/run --smoke --posternd $(BUILD)/posternd \
	    --loadgen $(BUILD)/bench/postern-loadgen

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(BUILD)/obj/src/posternd.d $(FUZZ_OBJS:.o=.d)
