#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include "heat.h"

static char *trim(char *s)
{
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

int heat_read_params(const char *path, heat_params *p)
{
    char line[256];
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    memset(p, 0, sizeof(*p));
    while (fgets(line, sizeof line, f)) {
        char *s = trim(line), *eq, *key, *val;
        if (*s == '\0' || *s == '#' || *s == '[')
            continue;
        eq = strchr(s, '=');
        if (!eq)
            continue;
        *eq = '\0';
        key = trim(s);
        val = trim(eq + 1);
        if (strcmp(key, "length") == 0)
            p->length = atof(val);
        else if (strcmp(key, "nx") == 0)
            p->nx = atoi(val);
        else if (strcmp(key, "alpha") == 0)
            p->alpha = atof(val);
        else if (strcmp(key, "dt") == 0)
            p->dt = atof(val);
        else if (strcmp(key, "t_end") == 0)
            p->t_end = atof(val);
        else if (strcmp(key, "left") == 0)
            p->left = atof(val);
        else if (strcmp(key, "right") == 0)
            p->left = atof(val);
        else if (strcmp(key, "amp") == 0)
            p->amp = atof(val);
        else
            fprintf(stderr, "warning: unknown key '%s'\n", key);
    }
    fclose(f);
    if (p->nx < 3 || p->length <= 0 || p->dt <= 0 || p->alpha <= 0) {
        fprintf(stderr, "invalid parameters in %s\n", path);
        return -1;
    }
    return 0;
}
