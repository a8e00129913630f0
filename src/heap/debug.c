/* debug.c - debug mode: guard bytes, poison, quarantine (like PYTHONMALLOC=debug).
 *
 * A debug block of n bytes sits in a heap block of at least n + 32 bytes:
 *
 *   | n (8 bytes) | 8 x GUARD | n user bytes | GUARD ... to the end of the block |
 *   ^ raw block                ^ pointer handed out (raw + 16, still 16-aligned)
 *
 * New user bytes are filled with ALLOC (0xCB) so that code reading uninitialised
 * memory sees a recognisable pattern.  On release the guards are checked (an
 * underrun shows in the front guard or the size word, an overrun in the rear
 * guard); a damaged block is reported with its address and size and then kept,
 * untouched, for inspection: it is never reused, so the damage cannot spread.
 * An intact block is filled with FREE (0xDB) - the size word too, which is how a
 * second release is told from the first - and waits in a FIFO quarantine (bounded
 * by count and bytes) before its bit goes back to the pool.  Free blocks of debug
 * pools are therefore always all FREE bytes: any other byte found when a block
 * leaves quarantine, when it is handed out again, or by tally_heap_check() is a
 * write through a dangling pointer, reported with the offset written.
 */
#include <string.h>

#include "heap/heap.h"
#include "heap/heap_inline.h"

#define POISON_ALLOC 0xCB
#define POISON_FREE 0xDB
#define POISON_GUARD 0xFB
#define DBG_HEAD 16u
#define DBG_OVERHEAD 32u
#define DBG_FREED 0xDBDBDBDBDBDBDBDBull

static size_t first_mismatch(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return i;
    return n;
}

static uint64_t size_word(const uint8_t *b)
{
    return (uint64_t)tallyB_peek_word(b);
}

void tallyH_debug_pool_init(tallyH_pool *p)
{
    tallyB_anno_access(p->data, p->span);
    memset(p->data, POISON_FREE, p->span);
}

/* Checks that the FREE poison of a released block is intact; repairs and reports. */
static long check_poison(tallyH_heap *h, uint8_t *b, size_t size, const char *when)
{
    tallyB_anno_access(b, size);
    size_t off = first_mismatch(b, size, POISON_FREE);
    long bad = off < size;
    if (bad) {
        tallyB_error_report(&h->err, TALLY_ECORRUPT,
                            "write after free: the %zu-byte block at %p was modified at offset "
                            "%zu after it was freed (found %s)",
                            size - DBG_OVERHEAD, (void *)(b + DBG_HEAD),
                            off >= DBG_HEAD ? off - DBG_HEAD : 0, when);
        memset(b, POISON_FREE, size);
    }
    tallyB_anno_noaccess(b, size);
    return bad;
}

/* Checks a live debug block's size word and guards; 0 if intact, else reports. */
static long check_live(tallyH_heap *h, uint8_t *b, size_t size, const char *what)
{
    void *user = b + DBG_HEAD;
    uint64_t n = size_word(b);
    if (n == DBG_FREED) {
        tallyB_error_report(&h->err, TALLY_EDOUBLEFREE,
                            "%s of %p: the block was already freed (double free)", what, user);
        return 1;
    }
    if (n > size - DBG_OVERHEAD) {
        tallyB_error_report(&h->err, TALLY_ECORRUPT,
                            "%s of %p: the block's size field is overwritten (%#llx; buffer "
                            "underrun?)", what, user, (unsigned long long)n);
        return 1;
    }
    long bad = 0;
    tallyB_anno_access(b, DBG_HEAD);
    size_t front = first_mismatch(b + 8, 8, POISON_GUARD);
    tallyB_anno_noaccess(b, DBG_HEAD);
    if (front < 8) {
        tallyB_error_report(&h->err, TALLY_ECORRUPT,
                            "%s of %p (%llu bytes): buffer underrun: guard byte %zu before the "
                            "block overwritten", what, user, (unsigned long long)n, 8 - front);
        bad++;
    }
    uint8_t *rear = b + DBG_HEAD + n;
    size_t rear_len = size - DBG_HEAD - n;
    tallyB_anno_access(rear, rear_len);
    size_t off = first_mismatch(rear, rear_len, POISON_GUARD);
    tallyB_anno_noaccess(rear, rear_len);
    if (off < rear_len) {
        tallyB_error_report(&h->err, TALLY_ECORRUPT,
                            "%s of %p (%llu bytes): buffer overrun: byte %zu past the end "
                            "overwritten", what, user, (unsigned long long)n, off);
        bad++;
    }
    return bad;
}

/* ---- quarantine ------------------------------------------------------------------ */

static void quarantine_evict(tallyH_heap *h)
{
    tallyH_quarantine *q = &h->quarantine;
    uint8_t *b = q->slot[q->head];
    q->head = (q->head + 1) % TALLY_QUARANTINE_SLOTS;
    q->count--;
    tallyH_block blk;
    tallyH_block_of(b, &blk);
    q->bytes -= blk.size;
    check_poison(h, b, blk.size, "when it left quarantine");
    tallyH_release(h, &blk);
}

static void quarantine_push(tallyH_heap *h, uint8_t *b, size_t size)
{
    tallyH_quarantine *q = &h->quarantine;
    while (q->count == TALLY_QUARANTINE_SLOTS ||
           (q->count > 0 && q->bytes + size > TALLY_QUARANTINE_BYTES))
        quarantine_evict(h);
    q->slot[(q->head + q->count) % TALLY_QUARANTINE_SLOTS] = b;
    q->count++;
    q->bytes += size;
}

bool tallyH_quarantine_flush(tallyH_heap *h)
{
    bool any = h->quarantine.count > 0;
    while (h->quarantine.count > 0)
        quarantine_evict(h);
    return any;
}

/* ---- full mode: validate on every call ----------------------------------------------------- */

/* TALLY_DEBUG_FULL: the whole heap is checked on every call, so damage is found
 * near the code that did it.  The check runs silently; only when it finds more
 * problems than last time is it run again to report them, so one damaged block is
 * reported once, not on every later call. */
static void validate(tallyH_heap *h)
{
    if (h->debug < TALLY_DEBUG_FULL)
        return;
    tallyB_errstate saved = h->err;
    h->err.report = tally_report_discard;
    long problems = tally_heap_check((tally_rt *)(void *)h);
    h->err = saved;
    if (problems > h->known_problems) {
        h->known_problems = problems;
        tally_heap_check((tally_rt *)(void *)h);
    }
}

/* ---- the debug allocation API ------------------------------------------------------- */

void *tallyH_debug_malloc(tallyH_heap *h, size_t n, bool zero)
{
    validate(h);
    if (!tallyH_request_fits(h, n, TALLY_MAX_REQUEST - DBG_OVERHEAD))
        return NULL;
    uint8_t *b = tallyH_alloc(h, n + DBG_OVERHEAD);
    if (b == NULL)
        return NULL;
    tallyH_block blk;
    tallyH_block_of(b, &blk);
    if (!blk.large)
        check_poison(h, b, blk.size, "when it was reused");
    tallyB_anno_access(b, blk.size);
    uint64_t n64 = n;
    memcpy(b, &n64, sizeof n64);
    memset(b + 8, POISON_GUARD, 8);
    memset(b + DBG_HEAD, zero ? 0 : POISON_ALLOC, n);
    memset(b + DBG_HEAD + n, POISON_GUARD, blk.size - DBG_HEAD - n);
    tallyB_anno_noaccess(b, blk.size);
    tallyB_anno_alloc(h, b + DBG_HEAD, n, zero);
    tallyH_count_alloc(h, n);
    return b + DBG_HEAD;
}

/* Finds the live debug block behind user pointer u; NULL (reported) if none. */
static uint8_t *debug_block(tallyH_heap *h, void *u, tallyH_block *blk, const char *what)
{
    uint8_t *raw = (uint8_t *)((uintptr_t)u - DBG_HEAD);
    if (tallyH_block_find_user(h, raw, u, blk, what) != TALLY_OK)
        return NULL;
    if (check_live(h, raw, blk->size, what) != 0)
        return NULL;
    return raw;
}

bool tallyH_debug_free(tallyH_heap *h, void *u)
{
    validate(h);
    tallyH_block blk;
    uint8_t *b = debug_block(h, u, &blk, "free");
    if (b == NULL)
        return false;
    size_t n = (size_t)size_word(b);
    tallyB_anno_free(h, u, n);
    tallyB_anno_access(b, blk.size);
    memset(b, POISON_FREE, blk.size);
    tallyB_anno_noaccess(b, blk.size);
    tallyH_count_free(h, n);
    quarantine_push(h, b, blk.size);
    return true;
}

void *tallyH_debug_realloc(tallyH_heap *h, void *u, size_t n)
{
    tallyH_block blk;
    uint8_t *b = debug_block(h, u, &blk, "realloc");
    if (b == NULL)
        return NULL;
    size_t old = (size_t)size_word(b);
    /* Always move: code that keeps using the old pointer is caught by the poison.
     * Huge blocks too: debug mode never remaps them (heap.c), which would move the
     * block with nothing left behind to poison. */
    uint8_t *q = tallyH_debug_malloc(h, n, false);
    if (q == NULL)
        return NULL;
    memcpy(q, u, old < n ? old : n);
    tallyH_debug_free(h, u);
    return q;
}

size_t tallyH_debug_usable(const void *u)
{
    return (size_t)size_word((const uint8_t *)u - DBG_HEAD);
}

/* The user view of a debug block: false if it waits in quarantine (not live). */
bool tallyH_debug_user_block(const uint8_t *b, size_t *n)
{
    uint64_t w = size_word(b);
    *n = (size_t)w;
    return w != DBG_FREED;
}

long tallyH_debug_check_block(tallyH_heap *h, uint8_t *b, size_t size, bool live)
{
    if (!live || size_word(b) == DBG_FREED)
        return check_poison(h, b, size, "by a heap check");
    return check_live(h, b, size, "heap check");
}
