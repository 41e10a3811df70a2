#include <math.h>
#include "geo/geo.h"
#include "internal.h"

double geo__deg2rad(double deg)
{
    return deg * M_PI / 180.0;
}

double geo__rad2deg(double rad)
{
    return rad * 180.0 / M_PI;
}

double geo_distance_km(geo_point a, geo_point b)
{
    double p1 = geo__deg2rad(a.lat), p2 = geo__deg2rad(b.lat);
    double dp = p2 - p1, dl = geo__deg2rad(b.lon - a.lon);
    double h = sin(dp / 2) * sin(dp / 2) + cos(p1) * cos(p2) * sin(dl / 2) * sin(dl / 2);
    return 2.0 * GEO_EARTH_RADIUS_KM * atan2(sqrt(h), sqrt(1.0 - h));
}

double geo_bearing_deg(geo_point a, geo_point b)
{
    double p1 = geo__deg2rad(a.lat), p2 = geo__deg2rad(b.lat);
    double dl = geo__deg2rad(b.lon - a.lon);
    double y = sin(dl) * cos(p2);
    double x = cos(p1) * sin(p2) - sin(p1) * cos(p2) * cos(dl);
    double deg = fmod(geo__rad2deg(atan2(y, x)) + 360.0, 360.0);
    return deg;
}
