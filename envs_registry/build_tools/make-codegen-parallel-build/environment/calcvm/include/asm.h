#ifndef CALCVM_ASM_H
#define CALCVM_ASM_H

#include <stdio.h>

struct program;

/* Assembles the text in fp. Returns NULL and prints a message on error. */
struct program *assemble(FILE *fp);
void program_free(struct program *p);

#endif
