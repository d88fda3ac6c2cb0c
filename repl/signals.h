/* signals.h -- the REPL's signal handling: handlers only set flags.
 *
 * SIGINT (Ctrl-C), SIGTERM/SIGHUP (asked to quit) and SIGWINCH (resize) are
 * caught without SA_RESTART, so a blocking poll returns EINTR and the main
 * loop looks at the flags.  ZeroMQ's threads must not take these signals:
 * signals_block_in_threads() blocks them around the creation of the context.
 */
#ifndef REPL_SIGNALS_H
#define REPL_SIGNALS_H

#include <signal.h>

/* Installs the handlers (SIGPIPE is ignored).  Returns -1 if the wake-up
 * pipe cannot be made. */
int signals_install(void);

/* A descriptor that becomes readable whenever a caught signal arrives (the
 * self-pipe trick): a wait that includes it cannot miss a signal that came
 * just before the wait began.  Drain it with signals_drain(). */
int signals_fd(void);
void signals_drain(void);

/* Blocks the caught signals and saves the previous mask (before creating
 * threads), then restores it (after). */
void signals_block(void);
void signals_unblock(void);

/* Each returns 1 and clears the flag when its signal arrived since the last call. */
int signals_take_interrupt(void);
int signals_take_resize(void);
/* Set once SIGTERM or SIGHUP arrived; never cleared. */
int signals_quit_requested(void);

#endif /* REPL_SIGNALS_H */
