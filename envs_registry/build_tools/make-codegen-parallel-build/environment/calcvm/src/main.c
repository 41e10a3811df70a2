#include <stdio.h>
#include <string.h>
#include "asm.h"
#include "vm.h"

int main(int argc, char **argv)
{
    FILE *fp = stdin;
    struct program *p;
    int rc;

    if (argc > 1 && strcmp(argv[1], "-") != 0) {
        fp = fopen(argv[1], "r");
        if (!fp) {
            perror(argv[1]);
            return 2;
        }
    }
    p = assemble(fp);
    if (fp != stdin)
        fclose(fp);
    if (!p)
        return 2;
    rc = vm_run(p);
    program_free(p);
    return rc;
}
