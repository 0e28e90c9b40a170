/* dump_dataset PATH: every document of a dataset that indexed_dataset_open reads (Megatron prefix,
 * PREFIX.bin/.idx, llm.c shard), for tests that compare it with another reader.
 *
 * stdout: `format F`, `dtype D`, `documents N`, `tokens T`, then one line per document with its
 * token ids separated by spaces. A file that does not open: its one-line message on stderr, exit 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "data/indexed_dataset.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: dump_dataset PATH\n");
        return 2;
    }
    indexed_dataset *d;
    status st;
    if (indexed_dataset_open(argv[1], &d, &st) != 0) {
        fprintf(stderr, "%s\n", st.message);
        return 1;
    }
    int64_t documents = indexed_dataset_documents(d);
    printf("format %s\ndtype %s\ndocuments %" PRId64 "\ntokens %" PRId64 "\n",
           indexed_dataset_format(d), indexed_dataset_dtype(d), documents,
           indexed_dataset_tokens(d));
    int32_t *ids = NULL;
    int result = 0;
    for (int64_t doc = 0; doc < documents && result == 0; doc++) {
        int64_t length = indexed_dataset_document_length(d, doc);
        free(ids);
        ids = malloc((size_t)(length ? length : 1) * sizeof *ids);
        if (!ids) {
            fprintf(stderr, "%s: out of memory for document %" PRId64 "\n", argv[1], doc);
            result = 1;
            break;
        }
        indexed_dataset_read(d, doc, 0, length, ids);
        for (int64_t i = 0; i < length; i++)
            printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
    free(ids);
    indexed_dataset_close(d);
    return result;
}
