/* bitmap.h - searching and setting runs of bits in word arrays.
 *
 * Shared by the regions (a bit per pool, region.c) and the medium arenas (a bit
 * per unit, medium.c).  Bit i of a map is bit (i & 63) of word i >> 6.  The
 * searches stop at nbits, whatever the last word holds past it.
 */
#ifndef TALLY_HEAP_BITMAP_H
#define TALLY_HEAP_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"

#define TALLY_BIT_NONE UINT32_MAX

/* First set bit at or after i, or TALLY_BIT_NONE. */
TALLY_INLINE uint32_t tallyH_next_set(const uint64_t *map, uint32_t nbits, uint32_t i)
{
    if (i >= nbits)
        return TALLY_BIT_NONE;
    uint32_t w = i >> 6, nwords = (nbits + 63) >> 6;
    uint64_t bits = map[w] & (~(uint64_t)0 << (i & 63));
    while (bits == 0) {
        if (++w >= nwords)
            return TALLY_BIT_NONE;
        bits = map[w];
    }
    uint32_t r = (w << 6) + (uint32_t)__builtin_ctzll(bits);
    return r < nbits ? r : TALLY_BIT_NONE;
}

/* First clear bit at or after i, or nbits. */
TALLY_INLINE uint32_t tallyH_next_clear(const uint64_t *map, uint32_t nbits, uint32_t i)
{
    if (i >= nbits)
        return nbits;
    uint32_t w = i >> 6, nwords = (nbits + 63) >> 6;
    uint64_t bits = ~map[w] & (~(uint64_t)0 << (i & 63));
    while (bits == 0) {
        if (++w >= nwords)
            return nbits;
        bits = ~map[w];
    }
    uint32_t r = (w << 6) + (uint32_t)__builtin_ctzll(bits);
    return r < nbits ? r : nbits;
}

/* Start of the first run of n set bits, or TALLY_BIT_NONE (first fit). */
TALLY_INLINE uint32_t tallyH_find_run(const uint64_t *map, uint32_t nbits, uint32_t n)
{
    uint32_t i = 0;
    for (;;) {
        i = tallyH_next_set(map, nbits, i);
        if (i == TALLY_BIT_NONE || i + n > nbits)
            return TALLY_BIT_NONE;
        uint32_t j = tallyH_next_clear(map, nbits, i);
        if (j - i >= n)
            return i;
        i = j;
    }
}

/* Sets (on) or clears bits [i, i + n), a word at a time. */
TALLY_INLINE void tallyH_bits_set(uint64_t *map, uint32_t i, uint32_t n, bool on)
{
    while (n > 0) {
        uint32_t off = i & 63, take = 64 - off < n ? 64 - off : n;
        uint64_t mask = (take == 64 ? ~(uint64_t)0 : (((uint64_t)1 << take) - 1)) << off;
        if (on)
            map[i >> 6] |= mask;
        else
            map[i >> 6] &= ~mask;
        i += take;
        n -= take;
    }
}

TALLY_INLINE bool tallyH_bit_get(const uint64_t *map, uint32_t i)
{
    return (map[i >> 6] >> (i & 63)) & 1;
}

/* Bits set in the first nwords words of map. */
TALLY_INLINE uint32_t tallyH_bits_count(const uint64_t *map, uint32_t nwords)
{
    uint32_t n = 0;
    for (uint32_t w = 0; w < nwords; w++)
        n += (uint32_t)__builtin_popcountll(map[w]);
    return n;
}

#endif /* TALLY_HEAP_BITMAP_H */
