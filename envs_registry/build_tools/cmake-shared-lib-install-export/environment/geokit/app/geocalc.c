#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "geo/geo.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: geocalc dist LAT1 LON1 LAT2 LON2\n"
            "       geocalc bearing LAT1 LON1 LAT2 LON2\n"
            "       geocalc perimeter FILE   (one 'lat lon' pair per line)\n"
            "       geocalc --version\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("geocalc %s (libgeo %s)\n", GEO_VERSION_STRING, geo_version());
        return 0;
    }
    if (argc == 6 && (strcmp(argv[1], "dist") == 0 || strcmp(argv[1], "bearing") == 0)) {
        geo_point a = {atof(argv[2]), atof(argv[3])};
        geo_point b = {atof(argv[4]), atof(argv[5])};
        if (argv[1][0] == 'd')
            printf("%.3f km\n", geo_distance_km(a, b));
        else
            printf("%.1f deg\n", geo_bearing_deg(a, b));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "perimeter") == 0) {
        geo_point pts[1024];
        int n = 0;
        FILE *fp = fopen(argv[2], "r");
        if (!fp) {
            perror(argv[2]);
            return 1;
        }
        while (n < 1024 && fscanf(fp, "%lf %lf", &pts[n].lat, &pts[n].lon) == 2)
            n++;
        fclose(fp);
        printf("%.3f km\n", geo_perimeter_km(pts, n));
        return 0;
    }
    return usage();
}
