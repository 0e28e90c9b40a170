/* Writing JSON by hand: string escaping and non-finite numbers (written as
 * null, since JSON has no NaN). */
#ifndef CAIRN_JSON_H
#define CAIRN_JSON_H

#include <stdio.h>

void json_write_string(FILE *out, const char *text);
void json_write_number(FILE *out, double value);

#endif
