/* Unicode tables for NFC (data/bpe_nfc.c), generated into data/bpe_nfc_tables.c by
 * tests/tools/generate_nfc_tables.py. All arrays are sorted by code point. */
#ifndef CAIRN_BPE_NFC_TABLES_H
#define CAIRN_BPE_NFC_TABLES_H

#include <stddef.h>
#include <stdint.h>

typedef struct nfc_range {
    uint32_t first, last;
    uint8_t value; /* the combining class in nfc_classes */
} nfc_range;

typedef struct nfc_decomposition {
    uint32_t code_point;
    uint16_t offset; /* into nfc_decomposition_pool */
    uint8_t length;
} nfc_decomposition;

typedef struct nfc_composition {
    uint32_t first, second, composite;
} nfc_composition;

/* Code points that NFC may change. Text without any is already NFC. */
extern const nfc_range nfc_unsafe[];
extern const size_t nfc_unsafe_count;
extern const nfc_range nfc_classes[];
extern const size_t nfc_class_count;
extern const nfc_decomposition nfc_decompositions[];
extern const size_t nfc_decomposition_count;
extern const uint32_t nfc_decomposition_pool[];
extern const nfc_composition nfc_compositions[];
extern const size_t nfc_composition_count;

#endif
