#include "geo/geo.h"
#include "internal.h"

double geo_perimeter_km(const geo_point *pts, int n)
{
    double total = 0.0;
    if (n < 2)
        return 0.0;
    for (int i = 0; i < n; i++)
        total += geo_distance_km(pts[i], pts[(i + 1) % n]);
    return total;
}
