/* shared_pages.h -- letting go of file pages a process maps but does not
 * use now: the template's, between its bursts of work (template.c).
 *
 * The template runs the kernel's binary, so its code and read-only data
 * are the kernel's pages in the page cache, and those of the shared
 * libraries are the system's.  Once it has started or imported, it idles
 * until the kernel asks for a worker, yet it keeps every page it touched
 * mapped, and each counts in its RSS: ~10 of its 14 MiB, among them
 * libzmq's and libcrypto's, which it never calls (bench/README.md, "The
 * template process").  Unmapping them frees no memory (the kernel and
 * others still map them) and costs nothing but a minor fault for a page
 * touched again; forks get cheaper, as there are fewer page table entries
 * to copy. */
#ifndef FERRY_SHARED_PAGES_H
#define FERRY_SHARED_PAGES_H

/* Unmaps the pages of the read-only segments of every loaded object (the
 * binary, the shared libraries, extension modules) that ld.so never wrote
 * to: the next touch maps the file's page again.  Returns how many pages
 * those segments span (resident or not).  Call it only while no other
 * thread runs code of those segments' objects that could be unloaded. */
long shared_pages_release(void);

#endif
