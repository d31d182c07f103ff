#include "fl_crc32.h"

/* Bitwise, table-free: 1 KiB of RAM matters more than speed at 921600 baud. */
uint32_t fl_crc32_update(uint32_t crc, const uint8_t *data, size_t len) {
  uint32_t c = ~crc;
  for (size_t i = 0; i < len; i++) {
    c ^= data[i];
    for (int k = 0; k < 8; k++) c = (c & 1u) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
  }
  return ~c;
}

uint32_t fl_crc32(const uint8_t *data, size_t len) { return fl_crc32_update(0, data, len); }
