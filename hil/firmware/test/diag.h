/* CBOR diagnostic rendering matching hil/src/vector-files.ts `cborDiag` (test-only). */
#pragma once
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fl_cbor.h"

typedef struct {
  char *s;
  size_t cap, len;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) n = b->cap > b->len + 1 ? b->cap - b->len - 1 : 0;
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = 0;
}
static void sb_str(sbuf_t *b, const char *s) { sb_put(b, s, strlen(s)); }

static bool diag_item(fl_cbor_reader_t *r, sbuf_t *b, int depth) {
  fl_cbor_item_t it;
  char tmp[48];
  if (depth > 16 || !fl_cbor_read(r, &it)) return false;
  switch (it.type) {
    case FL_CBOR_UINT: snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)it.u); sb_str(b, tmp); return true;
    case FL_CBOR_NINT:
      if (it.u == UINT64_MAX) sb_str(b, "-18446744073709551616");
      else { snprintf(tmp, sizeof tmp, "-%llu", (unsigned long long)it.u + 1); sb_str(b, tmp); }
      return true;
    case FL_CBOR_BYTES:
      sb_str(b, "h'");
      for (size_t i = 0; i < it.len; i++) { snprintf(tmp, sizeof tmp, "%02x", it.ptr[i]); sb_str(b, tmp); }
      sb_str(b, "'");
      return true;
    case FL_CBOR_TEXT:
      sb_str(b, "\"");
      for (size_t i = 0; i < it.len; i++) {
        if (it.ptr[i] == '"' || it.ptr[i] == '\\') sb_str(b, "\\");
        sb_put(b, (const char *)it.ptr + i, 1);
      }
      sb_str(b, "\"");
      return true;
    case FL_CBOR_ARRAY:
      sb_str(b, "[");
      for (uint64_t i = 0; i < it.u; i++) {
        if (i) sb_str(b, ",");
        if (!diag_item(r, b, depth + 1)) return false;
      }
      sb_str(b, "]");
      return true;
    case FL_CBOR_MAP:
      sb_str(b, "{");
      for (uint64_t i = 0; i < it.u; i++) {
        if (i) sb_str(b, ",");
        if (!diag_item(r, b, depth + 1)) return false;
        sb_str(b, ":");
        if (!diag_item(r, b, depth + 1)) return false;
      }
      sb_str(b, "}");
      return true;
    case FL_CBOR_TAG:
      snprintf(tmp, sizeof tmp, "%llu(", (unsigned long long)it.u);
      sb_str(b, tmp);
      if (!diag_item(r, b, depth + 1)) return false;
      sb_str(b, ")");
      return true;
    case FL_CBOR_FALSE: sb_str(b, "false"); return true;
    case FL_CBOR_TRUE: sb_str(b, "true"); return true;
    case FL_CBOR_NULL: sb_str(b, "null"); return true;
    case FL_CBOR_UNDEFINED: sb_str(b, "undefined"); return true;
    case FL_CBOR_FLOAT:
      snprintf(tmp, sizeof tmp, "f%d:%0*llx", it.bits, it.bits / 4, (unsigned long long)it.raw);
      sb_str(b, tmp);
      return true;
  }
  return false;
}

/* Render one complete item; "!invalid" when malformed, truncated or followed by trailing bytes. */
static void cbor_diag(const uint8_t *p, size_t len, char *out, size_t cap) {
  sbuf_t b = {out, cap, 0};
  fl_cbor_reader_t r;
  out[0] = 0;
  fl_cbor_reader_init(&r, p, len);
  if (!diag_item(&r, &b, 0) || r.pos != len) snprintf(out, cap, "!invalid");
}

static size_t hex_decode(const char *hex, uint8_t *out, size_t cap) {
  size_t n = strlen(hex) / 2;
  if (n > cap) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    sscanf(hex + 2 * i, "%2x", &v);
    out[i] = (uint8_t)v;
  }
  return n;
}

static void hex_encode(const uint8_t *p, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
  out[2 * n] = 0;
}
