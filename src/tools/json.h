/* json.h - JSON output helpers of the tally command (json.c). */
#ifndef TALLY_TOOLS_JSON_H
#define TALLY_TOOLS_JSON_H

#include <stdio.h>

/* Writes s as a JSON string (null for NULL): valid UTF-8 passes through, invalid
 * bytes become U+FFFD, so the output is valid JSON for any bytes. */
void tallyX_json_str(FILE *o, const char *s);

#endif /* TALLY_TOOLS_JSON_H */
