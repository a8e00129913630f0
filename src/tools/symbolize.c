/* symbolize.c - names for the frames of a capture, found offline with libdw (elfutils).
 *
 * Every module the capture recorded (path, load bias) is reported to one Dwfl with
 * dwfl_report_elf, which places the file at the address it had in the profiled
 * process; a frame's address then finds its module, symbol (dwfl_module_addrinfo)
 * and source line (dwfl_module_getsrc; separate debug files are found the standard
 * way, /usr/lib/debug and .gnu_debuglink).  Frames are return addresses, so the
 * address looked up is one byte before, inside the call instruction, which gives the
 * line of the call.  A module whose file's GNU build-id differs from the recorded one
 * (rebuilt since the capture) is not used: its frames show as module+offset.
 * LOCATION frames (captures written by a runtime) carry their names already.
 * C++ names are demangled (libstdc++'s __cxa_demangle, loaded at run time).
 * Results are cached by address; names are owned by the symboliser.
 */
#define _GNU_SOURCE
#include "symbolize.h"

#include "trace/capture_format.h"

#include <dlfcn.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sym_ent {
    uint64_t key;               /* address + 1, or location id + 1 for locations */
    uint8_t kind;
    tallyX_frame info;
};

struct tallyX_sym {
    const tallyX_capture *cap;
    Dwfl *dwfl;
    struct sym_ent *tab;
    size_t cap_, n;
};

static char *debuginfo_path;
static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &debuginfo_path,
};

/* Whether the file at path still has the build-id the capture recorded (or either
 * has none, which cannot be checked). */
static int same_build(const tallyX_module *m)
{
    if (m->nbuild_id == 0)
        return 1;
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;   /* libdw will not find it either */
    int same = 1;
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (elf != NULL) {
        const void *id;
        ssize_t n = dwelf_elf_gnu_build_id(elf, &id);
        if (n > 0)
            same = (size_t)n == m->nbuild_id && memcmp(id, m->build_id, (size_t)n) == 0;
        elf_end(elf);
    }
    close(fd);
    return same;
}

tallyX_sym *tallyX_sym_open(const tallyX_capture *cap)
{
    tallyX_sym *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->cap = cap;
    elf_version(EV_CURRENT);
    s->dwfl = dwfl_begin(&callbacks);
    if (s->dwfl == NULL)
        return s;   /* frames will show as module+offset */
    dwfl_report_begin(s->dwfl);
    for (size_t i = 0; i < cap->nmodules; i++) {
        const tallyX_module *m = &cap->modules[i];
        if (m->path == NULL || m->path[0] != '/')
            continue;   /* the vDSO and other objects without a file */
        /* Several segments of one object: report it once. */
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++)
            seen = cap->modules[k].bias == m->bias && cap->modules[k].path != NULL &&
                   strcmp(cap->modules[k].path, m->path) == 0;
        if (seen)
            continue;
        if (!same_build(m)) {
            fprintf(stderr, "tally report: warning: %s changed since the capture (its "
                            "build-id differs): its frames are not symbolised\n", m->path);
            continue;
        }
        dwfl_report_elf(s->dwfl, m->path, m->path, -1, m->bias, false);
    }
    dwfl_report_end(s->dwfl, NULL, NULL);
    return s;
}

static void ent_free(struct sym_ent *e)
{
    free(e->info.function);
    free(e->info.file);
}

void tallyX_sym_close(tallyX_sym *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->cap_; i++) {
        if (s->tab[i].key != 0)
            ent_free(&s->tab[i]);
    }
    free(s->tab);
    if (s->dwfl != NULL)
        dwfl_end(s->dwfl);
    free(s);
}

static char *dup_or_null(const char *c)
{
    return c != NULL ? strdup(c) : NULL;
}

/* C++ names are demangled with libstdc++'s __cxa_demangle when libstdc++ can be
 * loaded (the tools themselves are C and do not link it). */
typedef char *(*demangle_fn)(const char *, char *, size_t *, int *);

static char *function_name(const char *name)
{
    static demangle_fn demangle;
    static int tried;
    if (name == NULL)
        return NULL;
    if (name[0] == '_' && name[1] == 'Z') {
        if (!tried) {
            tried = 1;
            void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
            if (h != NULL)
                demangle = (demangle_fn)dlsym(h, "__cxa_demangle");
        }
        int status = -1;
        char *d = demangle != NULL ? demangle(name, NULL, NULL, &status) : NULL;
        if (d != NULL && status == 0)
            return d;   /* malloc'd by __cxa_demangle: ours to free */
        free(d);
    }
    return strdup(name);
}

/* The module (from the capture) containing addr, for frames libdw cannot place. */
static const tallyX_module *module_of(const tallyX_capture *cap, uint64_t addr)
{
    const tallyX_module *best = NULL;
    for (size_t i = 0; i < cap->nmodules; i++) {
        const tallyX_module *m = &cap->modules[i];
        if (m->lo <= addr && addr < m->hi && (best == NULL || m->seq >= best->seq))
            best = m;
    }
    return best;
}

static void resolve(tallyX_sym *s, uint8_t kind, uint64_t frame, tallyX_frame *out)
{
    memset(out, 0, sizeof *out);
    out->addr = frame;
    if (kind == TALLY_STACK_LOCATION) {
        const tallyX_location *l = tallyX_capture_location(s->cap, frame);
        if (l != NULL) {
            out->function = dup_or_null(l->function);
            out->file = dup_or_null(l->file);
            out->line = (int)(l->line > 0x7fffffff ? 0 : l->line);
        }
        return;
    }
    const tallyX_module *m = module_of(s->cap, frame);
    if (m != NULL) {
        const char *slash = m->path ? strrchr(m->path, '/') : NULL;
        out->module = slash ? slash + 1 : m->path;
        out->offset = frame - m->bias;
    }
    if (s->dwfl == NULL || frame == 0)
        return;
    Dwarf_Addr pc = frame - 1;
    Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, pc);
    if (mod == NULL)
        return;
    GElf_Off off;
    GElf_Sym sym;
    const char *name = dwfl_module_addrinfo(mod, pc, &off, &sym, NULL, NULL, NULL);
    out->function = function_name(name);
    Dwfl_Line *line = dwfl_module_getsrc(mod, pc);
    if (line != NULL) {
        int lineno = 0;
        const char *file = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
        out->file = dup_or_null(file);
        out->line = lineno;
    }
}

const tallyX_frame *tallyX_sym_frame(tallyX_sym *s, uint8_t kind, uint64_t frame)
{
    static tallyX_frame none;
    if (s == NULL)
        return &none;
    if ((s->n + 1) * 2 > s->cap_) {
        size_t ncap = s->cap_ ? s->cap_ * 2 : 1024;
        struct sym_ent *nt = calloc(ncap, sizeof *nt);
        if (nt == NULL)
            return &none;
        for (size_t i = 0; i < s->cap_; i++) {
            if (s->tab[i].key == 0)
                continue;
            size_t j = (s->tab[i].key * 0x9e3779b97f4a7c15u >> 20) & (ncap - 1);
            while (nt[j].key != 0)
                j = (j + 1) & (ncap - 1);
            nt[j] = s->tab[i];
        }
        free(s->tab);
        s->tab = nt;
        s->cap_ = ncap;
    }
    uint64_t key = frame + 1;
    size_t mask = s->cap_ - 1, i = (key * 0x9e3779b97f4a7c15u >> 20) & mask;
    for (; s->tab[i].key != 0; i = (i + 1) & mask) {
        if (s->tab[i].key == key && s->tab[i].kind == kind)
            return &s->tab[i].info;
    }
    s->tab[i].key = key;
    s->tab[i].kind = kind;
    s->n++;
    resolve(s, kind, frame, &s->tab[i].info);
    return &s->tab[i].info;
}
