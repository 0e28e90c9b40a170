/* `cairn inspect CHECKPOINT.h5`: a summary of a checkpoint — step, tokens, model shape from its
 * config, parameter count, optimizer and data state, and every tensor with its shape and L2 norm
 * (reading every tensor, so a checksum error shows here too). */
#ifndef CAIRN_CHECKPOINT_INSPECT_H
#define CAIRN_CHECKPOINT_INSPECT_H

#include <stdio.h>

#include "common/status.h"

int checkpoint_inspect(const char *path, FILE *out, status *st);
/* For `cairn inspect`: 1 when PATH is an HDF5 file (a checkpoint rather than a dataset). */
int checkpoint_inspect_applies(const char *path);
/* The subcommand's checkpoint branch: prints the summary on stdout or a one-line error on
 * stderr; returns the exit status. */
int checkpoint_inspect_command(const char *path);

#endif
