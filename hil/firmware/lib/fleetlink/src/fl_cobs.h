/* Consistent Overhead Byte Stuffing, same as hil/src/cobs.ts. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
#define FL_COBS_MAX_ENCODED(n) ((n) + (n) / 254 + 1)
/* Encode `len` bytes into `out` (capacity `cap`); returns the encoded length, 0 if it does not fit. */
size_t fl_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap);
/* Decode one block (no delimiter); returns the decoded length, or -1 if the block is not valid COBS.
   `out` may be the same buffer as `in` (decoding never writes ahead of reading). */
long fl_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap);
#ifdef __cplusplus
}
#endif
