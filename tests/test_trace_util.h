/* test_trace_util.h - what the tracing tests share: the traced figures, and the
 * check that the trace table agrees with itself.  Include after test_objects.h
 * (cmocka) and tally/tally.h. */
#ifndef TALLY_TEST_TRACE_UTIL_H
#define TALLY_TEST_TRACE_UTIL_H

static inline size_t cur(tally_rt *rt)
{
    size_t c, p;
    tally_trace_get_traced_memory(rt, &c, &p);
    return c;
}

static inline size_t peak(tally_rt *rt)
{
    size_t c, p;
    tally_trace_get_traced_memory(rt, &c, &p);
    return p;
}

/* Every trace of a snapshot summed equals current, and their count the traces
 * (the table's invariant).  With may_be_full, a heap too full for the snapshot
 * itself skips the check (the table's own count must do there). */
static inline void check_consistent(tally_rt *rt, int may_be_full)
{
    tally_trace_snapshot *s = tally_trace_take_snapshot(rt);
    if (s == NULL && may_be_full)
        return;
    assert_non_null(s);
    size_t total, n = tally_trace_snapshot_count(s, &total);
    tally_trace_stats st;
    tally_trace_get_stats(rt, &st);
    assert_int_equal(total, st.current);
    assert_int_equal(n, st.traces);
    tally_trace_snapshot_free(s);
}

static inline void assert_consistent(tally_rt *rt)
{
    check_consistent(rt, 0);
}

#endif /* TALLY_TEST_TRACE_UTIL_H */
