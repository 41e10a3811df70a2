#!/bin/bash
set -euo pipefail
cd /app/wordstat
make 2>&1 | head -5 || true
cat > Makefile <<'MK'
CC ?= gcc
CFLAGS = -O2 -Wall -Wextra -Werror -Iinclude
CPPFLAGS = -MMD -MP
LDLIBS = -lm
PREFIX ?= /usr/local

SRCS = src/main.c src/tokenize.c src/stats.c
OBJS = $(patsubst src/%.c,build/%.o,$(SRCS))
DEPS = $(OBJS:.o=.d)

all: build/wordstat

build/wordstat: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $(OBJS) $(LDLIBS)

build/%.o: src/%.c
	@mkdir -p build
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

install: build/wordstat
	install -d $(PREFIX)/bin
	install -m 755 build/wordstat $(PREFIX)/bin/wordstat

clean:
	rm -rf build

-include $(DEPS)

.PHONY: all clean install
MK
make clean
make
echo "Hello hello world" | ./build/wordstat
