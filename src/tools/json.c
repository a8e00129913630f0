/* json.c - JSON string output shared by `tally report` and `tally diff`.
 *
 * Names from symbol tables and paths from the file system are bytes, usually
 * UTF-8.  Valid UTF-8 sequences are written as they are (JSON text is UTF-8);
 * quotes, backslashes and control characters are escaped; a byte that does not
 * start or continue a valid sequence becomes U+FFFD, so the output is always
 * valid JSON whatever the input.
 */
#include "json.h"

/* The length of the valid UTF-8 sequence at s (1..4), or 0 if there is none. */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    int n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    if (c >= 0xF5 || n == 0)
        return 0;
    unsigned lo = 0x80, hi = 0xBF; /* the second byte's range excludes overlongs and surrogates */
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

void tallyX_json_str(FILE *o, const char *s)
{
    if (s == NULL) {
        fputs("null", o);
        return;
    }
    fputc('"', o);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned ch = *p;
        if (ch == '"' || ch == '\\') {
            fprintf(o, "\\%c", ch);
            p++;
        } else if (ch < 0x20 || ch == 0x7f) {
            fprintf(o, "\\u%04x", ch);
            p++;
        } else if (ch < 0x80) {
            fputc((int)ch, o);
            p++;
        } else {
            int n = utf8_len(p);
            if (n == 0) {
                fputs("\\ufffd", o);
                p++;
            } else {
                fwrite(p, 1, (size_t)n, o);
                p += n;
            }
        }
    }
    fputc('"', o);
}
