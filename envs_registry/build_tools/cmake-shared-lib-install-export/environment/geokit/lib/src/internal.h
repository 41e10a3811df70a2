#ifndef GEO_INTERNAL_H
#define GEO_INTERNAL_H

double geo__deg2rad(double deg);
double geo__rad2deg(double rad);

#endif
