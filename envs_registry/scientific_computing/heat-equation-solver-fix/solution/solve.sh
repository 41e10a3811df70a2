#!/bin/bash
set -euo pipefail
cd /app/heat
# build system: create the object directory and link libm
sed -i 's/^LDLIBS   =.*/LDLIBS   = -lm/' Makefile
python3 - <<'PY'
import re
mk = open("Makefile").read()
mk = mk.replace("build/%.o: src/%.c include/heat.h\n\t", "build/%.o: src/%.c include/heat.h\n\t@mkdir -p build\n\t")
open("Makefile", "w").write(mk)

p = open("src/params.c").read()
p = p.replace('''strcmp(key, "right") == 0)
            p->left = atof(val);''', '''strcmp(key, "right") == 0)
            p->right = atof(val);''')
open("src/params.c", "w").write(p)

s = open("src/solver.c").read()
s = s.replace("int nsteps = (int)(p->t_end / p->dt);", "int nsteps = (int)lround(p->t_end / p->dt);\n    double *old = malloc(sizeof(double) * p->nx);\n\n    if (!old)\n        return -1;")
s = s.replace('''    for (int n = 0; n < nsteps; n++) {
        for (int i = 1; i < p->nx - 1; i++)
            u[i] = u[i] + r * (u[i - 1] - 2.0 * u[i] + u[i + 1]);
    }
    return nsteps;''', '''    for (int n = 0; n < nsteps; n++) {
        for (int i = 0; i < p->nx; i++)
            old[i] = u[i];
        for (int i = 1; i < p->nx - 1; i++)
            u[i] = old[i] + r * (old[i - 1] - 2.0 * old[i] + old[i + 1]);
    }
    free(old);
    return nsteps;''')
open("src/solver.c", "w").write(s)
PY
make clean && make
mkdir -p out
./build/heat params/rod.ini out/rod_profile.csv
head -3 out/rod_profile.csv
