#include "data/split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int data_split_parse(const char *text, double fractions[3], status *st) {
    const char *number_characters = ".0123456789";
    double values[3] = {0, 0, 0};
    int count = 0;
    if (!text[0]) values[count++] = 1;
    for (const char *p = text; *p;) {
        size_t length = strspn(p, number_characters);
        if (length == 0) {
            p++;
            continue;
        }
        char run[64], *end;
        if (length >= sizeof run) return status_fail(st, "\"%s\": number too long", text);
        memcpy(run, p, length);
        run[length] = 0;
        double value = strtod(run, &end);
        if (*end || end == run) return status_fail(st, "\"%s\": \"%s\" is not a number", text, run);
        if (count == 3) return status_fail(st, "\"%s\": more than three numbers", text);
        values[count++] = value;
        p += length;
    }
    double total = 0.;  /* numpy's sum of three: left to right from 0 */
    for (int i = 0; i < 3; i++) total += values[i];
    if (!(total > 0)) return status_fail(st, "\"%s\": the shares sum to zero", text);
    for (int i = 0; i < 3; i++) fractions[i] = values[i] / total;
    return 0;
}

int data_split_range(const double fractions[3], data_split which, int64_t documents,
                     int64_t *first, int64_t *count) {
    double low = 0;
    for (int i = 0; i < (int)which; i++) low += fractions[i];
    double high = low + fractions[which];
    *first = *count = 0;
    if (high <= low) return 0;
    *first = (int64_t)nearbyint(low * (double)documents);
    *count = (int64_t)nearbyint(high * (double)documents) - *first;
    return 1;
}
