#include "fl_cobs.h"

size_t fl_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap) {
  if (cap < FL_COBS_MAX_ENCODED(len)) return 0;
  size_t code_at = 0, w = 1;
  uint8_t code = 1;
  for (size_t i = 0; i < len; i++) {
    if (in[i] == 0) {
      out[code_at] = code;
      code_at = w++;
      code = 1;
    } else {
      out[w++] = in[i];
      if (++code == 0xFF) {
        out[code_at] = code;
        code_at = w++;
        code = 1;
      }
    }
  }
  out[code_at] = code;
  return w;
}

long fl_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap) {
  size_t r = 0, w = 0;
  while (r < len) {
    uint8_t code = in[r++];
    if (code == 0) return -1;
    size_t end = r + code - 1;
    if (end > len) return -1;
    while (r < end) {
      if (in[r] == 0 || w >= cap) return -1;
      out[w++] = in[r++];
    }
    if (code != 0xFF && r < len) {
      if (w >= cap) return -1;
      out[w++] = 0;
    }
  }
  return (long)w;
}
