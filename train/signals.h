/* Stop requests by signal: SIGUSR1 (Slurm's --signal=USR1@T) or SIGTERM (a time limit,
 * `scancel`) asks the run to stop at the next step boundary with a checkpoint; a second such
 * signal ends the process at once with status 128 + signal.
 *
 * Contract: `signals_install` sets the handlers (SA_RESTART, so interrupted I/O goes on);
 * `signals_pending` returns the first signal received (0: none) without clearing it. The handler
 * only stores the number, or writes one line and calls _exit: async-signal-safe. */
#ifndef CAIRN_SIGNALS_H
#define CAIRN_SIGNALS_H

#include "common/status.h"

int signals_install(status *st);
int signals_pending(void);
/* "SIGTERM", "SIGUSR1" */
const char *signals_name(int signal_number);

#endif
