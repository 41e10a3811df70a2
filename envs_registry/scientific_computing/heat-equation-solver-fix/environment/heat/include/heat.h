#ifndef HEAT_H
#define HEAT_H

/* Parameters of a 1-D rod heat-conduction run. */
typedef struct {
    double length;   /* rod length L */
    int nx;          /* number of grid points including both ends */
    double alpha;    /* thermal diffusivity */
    double dt;       /* time step */
    double t_end;    /* final time */
    double left;     /* fixed temperature at x = 0 */
    double right;    /* fixed temperature at x = L */
    double amp;      /* amplitude of the initial sine bump */
} heat_params;

int heat_read_params(const char *path, heat_params *p);
void heat_initial(const heat_params *p, double *u);
int heat_run(const heat_params *p, double *u);
int heat_write_csv(const char *path, const heat_params *p, const double *u);

#endif
