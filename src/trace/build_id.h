/* build_id.h - the GNU build-id of a loaded object, read from its PT_NOTE
 * segments in memory; shared by the snapshot dump (dump.c) and the interposer of
 * `tally run` (src/tools/preload/stacks.c), which both write MODULE records.
 * Include after <link.h> (which needs _GNU_SOURCE for struct dl_phdr_info).
 *
 * A note is {namesz, descsz, type} then the name and the descriptor, each padded
 * to 4 bytes; every length is checked against the segment before it is used, so
 * a malformed note ends the search instead of reading past the segment. */
#ifndef TALLY_TRACE_BUILD_ID_H
#define TALLY_TRACE_BUILD_ID_H

#include <elf.h>
#include <stdint.h>
#include <string.h>

/* The build-id's bytes in *id and their count (at most 64), or 0 without one. */
static inline size_t tally_build_id(const struct dl_phdr_info *info, const uint8_t **id)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
        const uint8_t *end = p + ph->p_memsz;
        while ((size_t)(end - p) >= sizeof(ElfW(Nhdr))) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(const void *)p;
            size_t name = (nh->n_namesz + 3u) & ~3u, desc = (nh->n_descsz + 3u) & ~3u;
            if (name > (size_t)(end - p) - sizeof *nh)
                break;
            const uint8_t *d = p + sizeof *nh + name;
            if (desc > (size_t)(end - d))
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
                memcmp(p + sizeof *nh, "GNU", 4) == 0 && nh->n_descsz <= 64) {
                *id = d;
                return nh->n_descsz;
            }
            p = d + desc;
        }
    }
    return 0;
}

#endif /* TALLY_TRACE_BUILD_ID_H */
