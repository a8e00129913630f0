/* error.c - last-error records and misuse reports (see error.h). */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>

void tallyB_report_stderr(void *arg, const char *message)
{
    (void)arg;
    fprintf(stderr, "tally: %s\n", message);
}

void tallyB_error_init(tallyB_errstate *e, tally_report_fn fn, void *arg)
{
    e->code = TALLY_OK;
    e->reports = 0;
    e->report = fn ? fn : tallyB_report_stderr;
    e->report_arg = arg;
    e->message[0] = '\0';
}

static void error_format(tallyB_errstate *e, tally_error code, const char *fmt, va_list ap)
{
    e->code = code;
    vsnprintf(e->message, sizeof e->message, fmt, ap);
}

void tallyB_error_set(tallyB_errstate *e, tally_error code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_format(e, code, fmt, ap);
    va_end(ap);
}

void tallyB_error_report(tallyB_errstate *e, tally_error code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_format(e, code, fmt, ap);
    va_end(ap);
    e->reports++;
    e->report(e->report_arg, e->message);
}
