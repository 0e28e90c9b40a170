/* The one piece of global state in cairn: a signal handler can only reach a static object. */
#include "train/signals.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t pending_signal;

static void write_line(const char *text) {
    ssize_t ignored = write(STDERR_FILENO, text, strlen(text));
    (void)ignored;
}

static void on_stop_signal(int signal_number) {
    if (pending_signal) {
        write_line("cairn: second stop signal: exiting now without a checkpoint\n");
        _exit(128 + signal_number);
    }
    pending_signal = signal_number;
    write_line("cairn: stop requested: saving a checkpoint at the end of this step (signal again "
               "to exit at once)\n");
}

int signals_install(status *st) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    action.sa_flags = SA_RESTART;
    const int handled[] = {SIGUSR1, SIGTERM};
    /* one handler runs at a time, so the first signal is recorded before a second is seen */
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < sizeof handled / sizeof *handled; i++)
        sigaddset(&action.sa_mask, handled[i]);
    for (size_t i = 0; i < sizeof handled / sizeof *handled; i++)
        if (sigaction(handled[i], &action, NULL) != 0)
            return status_fail(st, "cannot install the %s handler: %s", signals_name(handled[i]),
                               strerror(errno));
    return 0;
}

int signals_pending(void) { return pending_signal; }

const char *signals_name(int signal_number) {
    switch (signal_number) {
    case SIGUSR1:
        return "SIGUSR1";
    case SIGTERM:
        return "SIGTERM";
    default:
        return "a signal";
    }
}
