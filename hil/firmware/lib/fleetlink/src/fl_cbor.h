/* Minimal CBOR (RFC 8949) for the esp-fleet messages: encoder with the same number rules as the
   TypeScript codec (so both produce identical bytes), RFC 8746 typed arrays (tag 64 uint8, tag 69
   uint16 LE), uint64 timestamps; a bounded, non-allocating pull decoder. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  uint8_t *buf;
  size_t cap;
  size_t len;
  bool overflow; /* set when a write did not fit; the output is then invalid */
} fl_cbor_writer_t;

void fl_cbor_writer_init(fl_cbor_writer_t *w, uint8_t *buf, size_t cap);
void fl_cbor_put_uint(fl_cbor_writer_t *w, uint64_t v);
void fl_cbor_put_int(fl_cbor_writer_t *w, int64_t v);
void fl_cbor_put_bytes(fl_cbor_writer_t *w, const uint8_t *p, size_t n);
void fl_cbor_put_text(fl_cbor_writer_t *w, const char *s);
void fl_cbor_put_textn(fl_cbor_writer_t *w, const char *s, size_t n);
void fl_cbor_put_array(fl_cbor_writer_t *w, size_t n);
void fl_cbor_put_map(fl_cbor_writer_t *w, size_t n);
void fl_cbor_put_tag(fl_cbor_writer_t *w, uint64_t tag);
void fl_cbor_put_bool(fl_cbor_writer_t *w, bool v);
void fl_cbor_put_null(fl_cbor_writer_t *w);
/* A JavaScript-style number: integral values as integers, others as float32 when that round-trips the
   value's significant decimal digits (cbor-x DECIMAL_FIT), else float64. */
void fl_cbor_put_number(fl_cbor_writer_t *w, double v);
void fl_cbor_put_float64(fl_cbor_writer_t *w, double v);
void fl_cbor_put_u8_array(fl_cbor_writer_t *w, const uint8_t *a, size_t n);   /* tag 64 */
void fl_cbor_put_u16_array(fl_cbor_writer_t *w, const uint16_t *a, size_t n); /* tag 69 LE; tag 64 if all < 256 */

typedef enum {
  FL_CBOR_UINT,
  FL_CBOR_NINT,   /* value = -1 - u */
  FL_CBOR_BYTES,
  FL_CBOR_TEXT,
  FL_CBOR_ARRAY,  /* u = count */
  FL_CBOR_MAP,    /* u = pairs */
  FL_CBOR_TAG,    /* u = tag number; the tagged item follows */
  FL_CBOR_FALSE,
  FL_CBOR_TRUE,
  FL_CBOR_NULL,
  FL_CBOR_UNDEFINED,
  FL_CBOR_FLOAT   /* f, with `bits` = 16/32/64 and `raw` the bit pattern */
} fl_cbor_type_t;

typedef struct {
  fl_cbor_type_t type;
  uint64_t u;
  const uint8_t *ptr; /* bytes/text content */
  size_t len;
  double f;
  int bits;
  uint64_t raw;
} fl_cbor_item_t;

typedef struct {
  const uint8_t *p;
  size_t len;
  size_t pos;
} fl_cbor_reader_t;

void fl_cbor_reader_init(fl_cbor_reader_t *r, const uint8_t *p, size_t len);
/* Read the head of the next item (strings are read whole). Returns false on malformed/truncated
   input or on what this decoder does not support (indefinite lengths, reserved values). */
bool fl_cbor_read(fl_cbor_reader_t *r, fl_cbor_item_t *it);
/* Skip one complete item (nested up to 16 levels). */
bool fl_cbor_skip(fl_cbor_reader_t *r);
/* In the map that starts at the reader's position, find `key` (a text key) and leave the reader on its
   value. The reader is restored to the start of the map when the key is absent. */
bool fl_cbor_map_find(fl_cbor_reader_t *r, const char *key);
/* Convenience: numbers as double (uint, nint, float); text compared to a C string. */
bool fl_cbor_item_number(const fl_cbor_item_t *it, double *out);
bool fl_cbor_item_is_text(const fl_cbor_item_t *it, const char *s);

#ifdef __cplusplus
}
#endif
