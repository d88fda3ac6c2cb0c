/* shared_pages.c -- letting go of file pages (shared_pages.h).
 *
 * What may go is read from the loaded objects themselves (dl_iterate_phdr),
 * not from /proc/self/smaps: reading smaps walks every page of every
 * mapping and took 10-18 ms in a template with numpy, this takes tens of
 * microseconds.  The segments that go are the ones ld.so never writes: read-
 * only PT_LOADs of objects without text relocations.  Relocated read-only
 * data (RELRO) lies in writable PT_LOADs, made read-only after relocation:
 * those hold copied pages and stay. */
#define _GNU_SOURCE /* dl_iterate_phdr, madvise */
#include "shared_pages.h"

#include <link.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

/* Whether the object's dynamic section asks for text relocations: ld.so
 * then writes to its read-only segments. */
static int has_text_relocations(const struct dl_phdr_info *info)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_DYNAMIC) {
            continue;
        }
        const ElfW(Dyn) *d = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
        for (; d->d_tag != DT_NULL; d++) {
            if (d->d_tag == DT_TEXTREL ||
                (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_TEXTREL))) {
                return 1;
            }
        }
    }
    return 0;
}

/* The kernel's vDSO is listed too; its pages are not a file's. */
static int is_vdso(const struct dl_phdr_info *info)
{
    uintptr_t vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
    for (int i = 0; vdso && i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && vdso >= start && vdso < start + ph->p_memsz) {
            return 1;
        }
    }
    return 0;
}

static int release_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    long *released = data;
    if (is_vdso(info) || has_text_relocations(info)) {
        return 0;
    }
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W)) {
            continue;
        }
        /* Whole pages inside the segment only: an edge page may be
         * another segment's too. */
        uintptr_t start = (info->dlpi_addr + ph->p_vaddr + page - 1) & ~(page - 1);
        uintptr_t end = (info->dlpi_addr + ph->p_vaddr + ph->p_filesz) & ~(page - 1);
        if (end > start && madvise((void *)start, end - start, MADV_DONTNEED) == 0) {
            *released += (long)((end - start) / page);
        }
    }
    return 0;
}

long shared_pages_release(void)
{
    long pages = 0;
    dl_iterate_phdr(release_object, &pages);
    return pages;
}
