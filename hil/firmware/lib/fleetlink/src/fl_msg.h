/* esp-fleet device messages (DESIGN §3) built with fl_cbor: the envelope {v,dev,boot,seq,ts} first,
   then the message's fields, in the same key order as the wire-contract vectors. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_cbor.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const char *dev;
  uint32_t boot;
  uint32_t seq;
  uint64_t ts_ms;
} fl_envelope_t;

typedef struct {
  uint32_t sent, buffered, dropped, reconnects, i2c_err;
} fl_counters_t;

typedef struct {
  const char *state;  /* online | offline | error */
  const char *reason; /* NULL to omit */
  bool has_figures;   /* uptime, heap, rssi, cnt */
  uint32_t uptime_s, heap;
  int rssi;
  fl_counters_t cnt;
} fl_status_t;

typedef struct {
  uint16_t dist[64], amp[64];
  uint8_t status[64], refl[64];
  uint16_t amb, h;
} fl_tof_t;

typedef struct {
  uint16_t f1, f2, f3, f4, f5, f6, f7, f8, clear, nir;
  uint8_t gain, atime;
  uint16_t astep;
} fl_spectral_t;

typedef struct {
  const char *sample;
  const char *lot; /* NULL when not part of an inspection */
  int idx;         /* -1 to omit */
  fl_tof_t tof;
  fl_spectral_t spec;
  bool has_temp;
  double temp;
} fl_sqal_sample_t;

size_t fl_msg_status(const fl_envelope_t *e, const fl_status_t *s, uint8_t *out, size_t cap);
/* Command reply {id, ok[, err]} with an optional data map of one integer (data_key NULL to omit). */
size_t fl_msg_reply(const fl_envelope_t *e, const char *id, bool ok, const char *err, const char *data_key, int64_t data_value,
                    uint8_t *out, size_t cap);
size_t fl_msg_sqal_sample(const fl_envelope_t *e, const fl_sqal_sample_t *s, uint8_t *out, size_t cap);
/* Free-form event {type, sev, msg}. */
size_t fl_msg_event(const fl_envelope_t *e, const char *type, const char *sev, const char *msg, uint8_t *out, size_t cap);

#ifdef __cplusplus
}
#endif
