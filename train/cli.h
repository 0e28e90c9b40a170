/* Subcommands of the `cairn` command line. Each takes the arguments after its
 * name (argv[0] is the subcommand), prints one-line errors on stderr and
 * returns the process exit status. */
#ifndef CAIRN_CLI_H
#define CAIRN_CLI_H

int cli_train(int argc, char **argv);
int cli_prepare(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_import(int argc, char **argv);

#endif
