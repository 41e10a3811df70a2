#!/bin/bash
set -euo pipefail
cd /app/calcvm
cat README.md
rm -rf build gen calcvm
make build/vm.o || echo "confirmed: objects do not depend on the generated header"
cat > Makefile <<'MK'
# calcvm - a tiny stack machine
CC = gcc
CFLAGS = -O2 -Wall -Wextra -Werror -Iinclude -Igen
DEPFLAGS = -MMD -MP

OBJS = build/ops_table.o build/main.o build/vm.o build/asm.o
GEN = gen/ops.h gen/ops_table.c

calcvm: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $(OBJS)

# The generated files are order-only prerequisites so that they exist before the first
# compilation; afterwards the -MMD dependency files track exactly who includes gen/ops.h.
build/%.o: src/%.c | build $(GEN)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c -o $@ $<

build/ops_table.o: gen/ops_table.c | build
	$(CC) $(CFLAGS) $(DEPFLAGS) -c -o $@ $<

# One generator run produces both files (grouped target, GNU make >= 4.3).
$(GEN) &: ops.def tools/genops.sh
	sh tools/genops.sh ops.def gen

build:
	mkdir -p build

clean:
	rm -rf build gen calcvm

-include $(OBJS:.o=.d)

.PHONY: clean
MK
make clean
make -j8
./calcvm examples/countdown.asm
