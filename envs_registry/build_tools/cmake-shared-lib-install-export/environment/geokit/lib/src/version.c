#include "geo/geo.h"

const char *geo_version(void)
{
    return GEO_VERSION_STRING;
}
