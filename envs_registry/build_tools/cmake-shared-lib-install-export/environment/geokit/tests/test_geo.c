#include <math.h>
#include <stdio.h>
#include <string.h>
#include "geo/geo.h"

static int failures;

#define CHECK_NEAR(got, want, tol) do { \
    double g_ = (got), w_ = (want); \
    if (fabs(g_ - w_) > (tol)) { printf("FAIL %s:%d: %s = %.6f, want %.6f\n", __FILE__, __LINE__, #got, g_, w_); failures++; } \
} while (0)

int main(void)
{
    geo_point paris = {48.8566, 2.3522}, london = {51.5074, -0.1278};
    geo_point square[4] = {{0, 0}, {0, 1}, {1, 1}, {1, 0}};
    CHECK_NEAR(geo_distance_km(paris, paris), 0.0, 1e-9);
    CHECK_NEAR(geo_distance_km(paris, london), 343.56, 0.5);
    CHECK_NEAR(geo_bearing_deg((geo_point){0, 0}, (geo_point){0, 10}), 90.0, 1e-9);
    CHECK_NEAR(geo_bearing_deg((geo_point){0, 0}, (geo_point){-10, 0}), 180.0, 1e-9);
    CHECK_NEAR(geo_perimeter_km(square, 4), 4 * 111.19, 0.5);
    if (strcmp(geo_version(), GEO_VERSION_STRING) != 0) {
        printf("FAIL version mismatch\n");
        failures++;
    }
    printf("%s (%d failures)\n", failures ? "FAILED" : "OK", failures);
    return failures != 0;
}
