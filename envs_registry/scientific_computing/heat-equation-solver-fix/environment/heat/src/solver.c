#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "heat.h"

void heat_initial(const heat_params *p, double *u)
{
    double dx = p->length / (p->nx - 1);
    for (int i = 0; i < p->nx; i++) {
        double x = i * dx;
        u[i] = p->left + (p->right - p->left) * x / p->length + p->amp * sin(M_PI * x / p->length);
    }
    u[0] = p->left;
    u[p->nx - 1] = p->right;
}

/* Explicit FTCS time stepping; returns the number of steps taken. */
int heat_run(const heat_params *p, double *u)
{
    double dx = p->length / (p->nx - 1);
    double r = p->alpha * p->dt / (dx * dx);
    int nsteps = (int)(p->t_end / p->dt);

    if (r > 0.5)
        fprintf(stderr, "warning: r = %.3f > 0.5, scheme is unstable\n", r);
    for (int n = 0; n < nsteps; n++) {
        for (int i = 1; i < p->nx - 1; i++)
            u[i] = u[i] + r * (u[i - 1] - 2.0 * u[i] + u[i + 1]);
    }
    return nsteps;
}

int heat_write_csv(const char *path, const heat_params *p, const double *u)
{
    double dx = p->length / (p->nx - 1);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f, "x,u\n");
    for (int i = 0; i < p->nx; i++)
        fprintf(f, "%.6f,%.12e\n", i * dx, u[i]);
    fclose(f);
    return 0;
}
