/* tour.h - what the two halves of the tour (tour.c, tour_objects.c) share. */
#ifndef TALLY_TOUR_H
#define TALLY_TOUR_H

#include <tally/tally.h>

void tour_section(const char *title);
void tour_summary(tally_rt *rt, const char *when);
void tour_objects(void);
void tour_types(void);

#endif
