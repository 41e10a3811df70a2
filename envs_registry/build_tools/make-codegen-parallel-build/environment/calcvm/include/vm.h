#ifndef CALCVM_VM_H
#define CALCVM_VM_H

struct program;

/* Runs the program, printing PRINT output to stdout. Returns 0 on success. */
int vm_run(const struct program *p);

#endif
