/* CRC-32 (IEEE 802.3 / zlib), same as hil/src/crc32.ts. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
uint32_t fl_crc32(const uint8_t *data, size_t len);
uint32_t fl_crc32_update(uint32_t crc, const uint8_t *data, size_t len); /* start with 0 */
#ifdef __cplusplus
}
#endif
