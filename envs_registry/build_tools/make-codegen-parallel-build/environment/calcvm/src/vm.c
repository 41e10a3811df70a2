#include <stdio.h>
#include "program.h"
#include "vm.h"

#define STACK_MAX 256

int vm_run(const struct program *p)
{
    long stack[STACK_MAX], a, b;
    int sp = 0, pc = 0, steps = 0;

#define NEED(k) do { if (sp < (k)) { fprintf(stderr, "stack underflow at %d (%s)\n", pc, op_names[in.op]); return 1; } } while (0)
    while (pc >= 0 && pc < p->len) {
        struct insn in = p->code[pc++];
        if (++steps > 1000000) {
            fprintf(stderr, "step limit exceeded\n");
            return 1;
        }
        switch (in.op) {
        case OP_PUSH:
            if (sp == STACK_MAX) { fprintf(stderr, "stack overflow\n"); return 1; }
            stack[sp++] = in.arg;
            break;
        case OP_POP: NEED(1); sp--; break;
        case OP_DUP: NEED(1); stack[sp] = stack[sp - 1]; sp++; break;
        case OP_SWAP: NEED(2); a = stack[sp - 1]; stack[sp - 1] = stack[sp - 2]; stack[sp - 2] = a; break;
        case OP_ADD: NEED(2); b = stack[--sp]; a = stack[--sp]; stack[sp++] = a + b; break;
        case OP_SUB: NEED(2); b = stack[--sp]; a = stack[--sp]; stack[sp++] = a - b; break;
        case OP_MUL: NEED(2); b = stack[--sp]; a = stack[--sp]; stack[sp++] = a * b; break;
        case OP_DIV:
        case OP_MOD:
            NEED(2); b = stack[--sp]; a = stack[--sp];
            if (b == 0) { fprintf(stderr, "division by zero at %d\n", pc - 1); return 1; }
            stack[sp++] = in.op == OP_DIV ? a / b : a % b;
            break;
        case OP_JZ: NEED(1); if (stack[--sp] == 0) pc = (int)in.arg; break;
        case OP_JMP: pc = (int)in.arg; break;
        case OP_PRINT: NEED(1); printf("%ld\n", stack[--sp]); break;
        case OP_HALT: return 0;
        default:
            fprintf(stderr, "unknown opcode %d\n", in.op);
            return 1;
        }
    }
    return 0;
}
