#include <stdio.h>
#include <stdlib.h>
#include "heat.h"

int main(int argc, char **argv)
{
    heat_params p;
    double *u;
    int steps;

    if (argc != 3) {
        fprintf(stderr, "usage: %s PARAMS.ini OUTPUT.csv\n", argv[0]);
        return 2;
    }
    if (heat_read_params(argv[1], &p) != 0)
        return 1;
    u = malloc(sizeof(double) * p.nx);
    if (!u)
        return 1;
    heat_initial(&p, u);
    steps = heat_run(&p, u);
    if (heat_write_csv(argv[2], &p, u) != 0)
        return 1;
    printf("steps=%d t=%.6f\n", steps, steps * p.dt);
    free(u);
    return 0;
}
