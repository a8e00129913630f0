/* error.h - the last-error record every runtime keeps, and misuse reports.
 *
 * Errors travel as return values; the record says why in one sentence.  Misuse and
 * corruption are also reported, once each, through the runtime's report callback
 * (stderr by default) and counted, so that a program that ignores return values
 * still learns about them.  Formatting uses a fixed buffer: reporting never
 * allocates, so it works when the heap is exhausted.
 */
#ifndef TALLY_ERROR_H
#define TALLY_ERROR_H

#include "base/base.h"
#include "tally/runtime.h"

#define TALLY_ERRMSG_MAX 256

typedef struct tallyB_errstate {
    tally_error code;                /* last error, TALLY_OK when cleared */
    unsigned long long reports;      /* misuse/corruption reports made */
    tally_report_fn report;          /* where reports go (never NULL once set up) */
    void *report_arg;                /* its argument */
    char message[TALLY_ERRMSG_MAX];  /* the sentence for `code` */
} tallyB_errstate;

TALLY_INTERNAL void tallyB_error_init(tallyB_errstate *e, tally_report_fn fn, void *arg);
/* Records an ordinary failure (no report): exhaustion, bad argument. */
TALLY_INTERNAL void tallyB_error_set(tallyB_errstate *e, tally_error code,
                                     const char *fmt, ...) TALLY_PRINTF(3, 4);
/* Records misuse or corruption and reports it. */
TALLY_INTERNAL void tallyB_error_report(tallyB_errstate *e, tally_error code,
                                        const char *fmt, ...) TALLY_PRINTF(3, 4);
TALLY_INTERNAL void tallyB_report_stderr(void *arg, const char *message);

#endif /* TALLY_ERROR_H */
