#ifndef CALCVM_PROGRAM_H
#define CALCVM_PROGRAM_H

#include "ops.h"

struct insn {
    enum opcode op;
    long arg;
};

struct program {
    struct insn *code;
    int len;
};

#endif
