#ifndef GEO_GEO_H
#define GEO_GEO_H

#include "geo/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Earth radius used by every function of the library, in kilometres. */
#define GEO_EARTH_RADIUS_KM 6371.0

typedef struct {
    double lat; /* degrees, north positive */
    double lon; /* degrees, east positive */
} geo_point;

/* Great-circle distance (haversine formula) in kilometres. */
double geo_distance_km(geo_point a, geo_point b);

/* Initial bearing from a to b in degrees, normalised to [0, 360). */
double geo_bearing_deg(geo_point a, geo_point b);

/* Length of the closed polygon pts[0] -> ... -> pts[n-1] -> pts[0], in kilometres. */
double geo_perimeter_km(const geo_point *pts, int n);

/* Runtime version of the library, e.g. "2.1.0". */
const char *geo_version(void);

#ifdef __cplusplus
}
#endif

#endif
