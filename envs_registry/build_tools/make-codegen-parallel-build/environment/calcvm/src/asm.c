#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "asm.h"
#include "program.h"

static int lookup(const char *name)
{
    for (int i = 0; i < OP__COUNT; i++)
        if (strcasecmp(op_names[i], name) == 0)
            return i;
    return -1;
}

struct program *assemble(FILE *fp)
{
    char line[256];
    int cap = 64, lineno = 0;
    struct program *p = malloc(sizeof(*p));
    p->code = malloc(cap * sizeof(*p->code));
    p->len = 0;
    while (fgets(line, sizeof line, fp)) {
        char *hash = strchr(line, ';');
        char mnem[32];
        long arg = 0;
        int n, op;
        lineno++;
        if (hash)
            *hash = '\0';
        n = sscanf(line, "%31s %ld", mnem, &arg);
        if (n < 1)
            continue;
        op = lookup(mnem);
        if (op < 0 || (op_arity[op] == 1 && n != 2)) {
            fprintf(stderr, "line %d: bad instruction '%s'\n", lineno, mnem);
            program_free(p);
            return NULL;
        }
        if (p->len == cap) {
            cap *= 2;
            p->code = realloc(p->code, cap * sizeof(*p->code));
        }
        p->code[p->len].op = (enum opcode)op;
        p->code[p->len].arg = arg;
        p->len++;
    }
    return p;
}

void program_free(struct program *p)
{
    if (p) {
        free(p->code);
        free(p);
    }
}
