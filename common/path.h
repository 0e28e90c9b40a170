/* Small questions about file names. `path_has_suffix` is 1 when `path` ends with `suffix`
 * (".jsonl.gz", "/"), else 0. */
#ifndef CAIRN_PATH_H
#define CAIRN_PATH_H

int path_has_suffix(const char *path, const char *suffix);

#endif
