#include "fl_cbor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fl_cbor_writer_init(fl_cbor_writer_t *w, uint8_t *buf, size_t cap) {
  w->buf = buf;
  w->cap = cap;
  w->len = 0;
  w->overflow = false;
}

static void put(fl_cbor_writer_t *w, const uint8_t *p, size_t n) {
  if (w->overflow || w->len + n > w->cap) {
    w->overflow = true;
    return;
  }
  memcpy(w->buf + w->len, p, n);
  w->len += n;
}

static void head(fl_cbor_writer_t *w, uint8_t major, uint64_t v) {
  uint8_t b[9];
  size_t n;
  if (v < 24) {
    b[0] = (uint8_t)(major << 5 | v);
    n = 1;
  } else if (v <= 0xFF) {
    b[0] = (uint8_t)(major << 5 | 24);
    b[1] = (uint8_t)v;
    n = 2;
  } else if (v <= 0xFFFF) {
    b[0] = (uint8_t)(major << 5 | 25);
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)v;
    n = 3;
  } else if (v <= 0xFFFFFFFFu) {
    b[0] = (uint8_t)(major << 5 | 26);
    for (int i = 0; i < 4; i++) b[1 + i] = (uint8_t)(v >> (24 - 8 * i));
    n = 5;
  } else {
    b[0] = (uint8_t)(major << 5 | 27);
    for (int i = 0; i < 8; i++) b[1 + i] = (uint8_t)(v >> (56 - 8 * i));
    n = 9;
  }
  put(w, b, n);
}

void fl_cbor_put_uint(fl_cbor_writer_t *w, uint64_t v) { head(w, 0, v); }
void fl_cbor_put_int(fl_cbor_writer_t *w, int64_t v) {
  if (v >= 0) head(w, 0, (uint64_t)v);
  else head(w, 1, (uint64_t)(-1 - v));
}
void fl_cbor_put_bytes(fl_cbor_writer_t *w, const uint8_t *p, size_t n) {
  head(w, 2, n);
  put(w, p, n);
}
void fl_cbor_put_textn(fl_cbor_writer_t *w, const char *s, size_t n) {
  head(w, 3, n);
  put(w, (const uint8_t *)s, n);
}
void fl_cbor_put_text(fl_cbor_writer_t *w, const char *s) { fl_cbor_put_textn(w, s, strlen(s)); }
void fl_cbor_put_array(fl_cbor_writer_t *w, size_t n) { head(w, 4, n); }
void fl_cbor_put_map(fl_cbor_writer_t *w, size_t n) { head(w, 5, n); }
void fl_cbor_put_tag(fl_cbor_writer_t *w, uint64_t tag) { head(w, 6, tag); }
void fl_cbor_put_bool(fl_cbor_writer_t *w, bool v) {
  uint8_t b = v ? 0xF5 : 0xF4;
  put(w, &b, 1);
}
void fl_cbor_put_null(fl_cbor_writer_t *w) {
  uint8_t b = 0xF6;
  put(w, &b, 1);
}

void fl_cbor_put_float64(fl_cbor_writer_t *w, double v) {
  uint64_t bits;
  memcpy(&bits, &v, 8);
  uint8_t b[9];
  b[0] = 0xFB;
  for (int i = 0; i < 8; i++) b[1 + i] = (uint8_t)(bits >> (56 - 8 * i));
  put(w, b, 9);
}

/* cbor-x's table: mult10[i] = 1e(floor(45.15 - i * 0.30103)), indexed by the float32 exponent. */
static double mult10(int i) {
  static double table[256];
  static bool ready = false;
  if (!ready) {
    for (int k = 0; k < 256; k++) {
      char buf[16];
      snprintf(buf, sizeof buf, "1e%d", (int)floor(45.15 - k * 0.30103));
      table[k] = strtod(buf, NULL);
    }
    ready = true;
  }
  return table[i];
}

void fl_cbor_put_number(fl_cbor_writer_t *w, double v) {
  if (isfinite(v) && v == floor(v)) {
    if (v >= 0 && v <= 9007199254740991.0) { /* incl. -0.0, like `-0 >>> 0` */
      head(w, 0, (uint64_t)v);
      return;
    }
    if (v < 0 && v >= -9007199254740991.0) {
      head(w, 1, (uint64_t)(-1.0 - v));
      return;
    }
  }
  if (v < 4294967296.0 && v >= -2147483648.0) {
    float f = (float)v;
    uint32_t bits;
    memcpy(&bits, &f, 4);
    int idx = (int)(((bits >> 24) & 0x7F) << 1) | (int)(((bits >> 16) & 0xFF) >> 7);
    double x = v * mult10(idx);
    if (x >= -2147483648.0 && x <= 2147483647.0 && (double)(int32_t)x == x) {
      uint8_t b[5] = {0xFA, (uint8_t)(bits >> 24), (uint8_t)(bits >> 16), (uint8_t)(bits >> 8), (uint8_t)bits};
      put(w, b, 5);
      return;
    }
  }
  fl_cbor_put_float64(w, v);
}

void fl_cbor_put_u8_array(fl_cbor_writer_t *w, const uint8_t *a, size_t n) {
  head(w, 6, 64);
  fl_cbor_put_bytes(w, a, n);
}

void fl_cbor_put_u16_array(fl_cbor_writer_t *w, const uint16_t *a, size_t n) {
  size_t i = 0;
  while (i < n && a[i] <= 0xFF) i++;
  if (i == n) { /* every value fits in a byte: the smallest form, tag 64 (DESIGN §3, docs/decisions.md) */
    head(w, 6, 64);
    head(w, 2, n);
    for (i = 0; i < n; i++) {
      uint8_t b = (uint8_t)a[i];
      put(w, &b, 1);
    }
    return;
  }
  head(w, 6, 69);
  head(w, 2, n * 2);
  for (size_t i = 0; i < n; i++) {
    uint8_t b[2] = {(uint8_t)(a[i] & 0xFF), (uint8_t)(a[i] >> 8)};
    put(w, b, 2);
  }
}

/* ------------------------------------------------------------------------------------------ decoder */

void fl_cbor_reader_init(fl_cbor_reader_t *r, const uint8_t *p, size_t len) {
  r->p = p;
  r->len = len;
  r->pos = 0;
}

static double half_to_double(uint16_t h) {
  int e = (h >> 10) & 0x1F, m = h & 0x3FF;
  double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
  return (h & 0x8000) ? -v : v;
}

bool fl_cbor_read(fl_cbor_reader_t *r, fl_cbor_item_t *it) {
  if (r->pos >= r->len) return false;
  uint8_t ib = r->p[r->pos++];
  uint8_t major = ib >> 5, info = ib & 0x1F;
  uint64_t arg = info;
  int n = info == 24 ? 1 : info == 25 ? 2 : info == 26 ? 4 : info == 27 ? 8 : 0;
  if (info >= 28) return false; /* reserved or indefinite length: not used on our wire */
  if (n) {
    if (r->pos + (size_t)n > r->len) return false;
    arg = 0;
    for (int i = 0; i < n; i++) arg = arg << 8 | r->p[r->pos++];
  }
  memset(it, 0, sizeof *it);
  it->u = arg;
  switch (major) {
    case 0: it->type = FL_CBOR_UINT; return true;
    case 1: it->type = FL_CBOR_NINT; return true;
    case 2:
    case 3:
      if (arg > r->len - r->pos) return false;
      it->type = major == 2 ? FL_CBOR_BYTES : FL_CBOR_TEXT;
      it->ptr = r->p + r->pos;
      it->len = (size_t)arg;
      r->pos += (size_t)arg;
      return true;
    case 4: it->type = FL_CBOR_ARRAY; return arg <= r->len - r->pos; /* each element is >= 1 byte */
    case 5: it->type = FL_CBOR_MAP; return arg <= (r->len - r->pos) / 2;
    case 6: it->type = FL_CBOR_TAG; return true;
    default:
      if (n == 0) {
        if (info == 20) it->type = FL_CBOR_FALSE;
        else if (info == 21) it->type = FL_CBOR_TRUE;
        else if (info == 22) it->type = FL_CBOR_NULL;
        else if (info == 23) it->type = FL_CBOR_UNDEFINED;
        else return false;
        return true;
      }
      if (n == 1) return false;
      it->type = FL_CBOR_FLOAT;
      it->bits = n * 8;
      it->raw = arg;
      if (n == 2) it->f = half_to_double((uint16_t)arg);
      else if (n == 4) {
        uint32_t b32 = (uint32_t)arg;
        float f;
        memcpy(&f, &b32, 4);
        it->f = f;
      } else memcpy(&it->f, &arg, 8);
      return true;
  }
}

static bool skip_depth(fl_cbor_reader_t *r, int depth) {
  fl_cbor_item_t it;
  if (depth > 16 || !fl_cbor_read(r, &it)) return false;
  switch (it.type) {
    case FL_CBOR_ARRAY:
      for (uint64_t i = 0; i < it.u; i++)
        if (!skip_depth(r, depth + 1)) return false;
      return true;
    case FL_CBOR_MAP:
      for (uint64_t i = 0; i < it.u * 2; i++)
        if (!skip_depth(r, depth + 1)) return false;
      return true;
    case FL_CBOR_TAG: return skip_depth(r, depth + 1);
    default: return true;
  }
}

bool fl_cbor_skip(fl_cbor_reader_t *r) { return skip_depth(r, 0); }

bool fl_cbor_item_is_text(const fl_cbor_item_t *it, const char *s) {
  size_t n = strlen(s);
  return it->type == FL_CBOR_TEXT && it->len == n && memcmp(it->ptr, s, n) == 0;
}

bool fl_cbor_map_find(fl_cbor_reader_t *r, const char *key) {
  size_t start = r->pos;
  fl_cbor_item_t m, k;
  if (!fl_cbor_read(r, &m) || m.type != FL_CBOR_MAP) {
    r->pos = start;
    return false;
  }
  for (uint64_t i = 0; i < m.u; i++) {
    if (!fl_cbor_read(r, &k)) break;
    if (fl_cbor_item_is_text(&k, key)) return true;
    if (k.type == FL_CBOR_ARRAY || k.type == FL_CBOR_MAP || k.type == FL_CBOR_TAG) break; /* not our maps */
    if (!fl_cbor_skip(r)) break;
  }
  r->pos = start;
  return false;
}

bool fl_cbor_item_number(const fl_cbor_item_t *it, double *out) {
  switch (it->type) {
    case FL_CBOR_UINT: *out = (double)it->u; return true;
    case FL_CBOR_NINT: *out = -1.0 - (double)it->u; return true;
    case FL_CBOR_FLOAT: *out = it->f; return true;
    default: return false;
  }
}
