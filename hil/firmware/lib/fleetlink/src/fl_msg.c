#include "fl_msg.h"

static void envelope(fl_cbor_writer_t *w, const fl_envelope_t *e, size_t extra) {
  fl_cbor_put_map(w, 5 + extra);
  fl_cbor_put_text(w, "v"), fl_cbor_put_uint(w, 1);
  fl_cbor_put_text(w, "dev"), fl_cbor_put_text(w, e->dev);
  fl_cbor_put_text(w, "boot"), fl_cbor_put_uint(w, e->boot);
  fl_cbor_put_text(w, "seq"), fl_cbor_put_uint(w, e->seq);
  fl_cbor_put_text(w, "ts"), fl_cbor_put_uint(w, e->ts_ms);
}

size_t fl_msg_status(const fl_envelope_t *e, const fl_status_t *s, uint8_t *out, size_t cap) {
  fl_cbor_writer_t w;
  fl_cbor_writer_init(&w, out, cap);
  envelope(&w, e, 1 + (s->reason ? 1 : 0) + (s->has_figures ? 4 : 0));
  fl_cbor_put_text(&w, "state"), fl_cbor_put_text(&w, s->state);
  if (s->reason) fl_cbor_put_text(&w, "reason"), fl_cbor_put_text(&w, s->reason);
  if (s->has_figures) {
    fl_cbor_put_text(&w, "uptime"), fl_cbor_put_uint(&w, s->uptime_s);
    fl_cbor_put_text(&w, "heap"), fl_cbor_put_uint(&w, s->heap);
    fl_cbor_put_text(&w, "rssi"), fl_cbor_put_int(&w, s->rssi);
    fl_cbor_put_text(&w, "cnt"), fl_cbor_put_map(&w, 5);
    fl_cbor_put_text(&w, "sent"), fl_cbor_put_uint(&w, s->cnt.sent);
    fl_cbor_put_text(&w, "buffered"), fl_cbor_put_uint(&w, s->cnt.buffered);
    fl_cbor_put_text(&w, "dropped"), fl_cbor_put_uint(&w, s->cnt.dropped);
    fl_cbor_put_text(&w, "reconnects"), fl_cbor_put_uint(&w, s->cnt.reconnects);
    fl_cbor_put_text(&w, "i2c_err"), fl_cbor_put_uint(&w, s->cnt.i2c_err);
  }
  return w.overflow ? 0 : w.len;
}

size_t fl_msg_reply(const fl_envelope_t *e, const char *id, bool ok, const char *err, const char *data_key, int64_t data_value,
                    uint8_t *out, size_t cap) {
  fl_cbor_writer_t w;
  fl_cbor_writer_init(&w, out, cap);
  envelope(&w, e, 2 + (err ? 1 : 0) + (data_key ? 1 : 0));
  fl_cbor_put_text(&w, "id"), fl_cbor_put_text(&w, id);
  fl_cbor_put_text(&w, "ok"), fl_cbor_put_bool(&w, ok);
  if (err) fl_cbor_put_text(&w, "err"), fl_cbor_put_text(&w, err);
  if (data_key) {
    fl_cbor_put_text(&w, "data"), fl_cbor_put_map(&w, 1);
    fl_cbor_put_text(&w, data_key), fl_cbor_put_int(&w, data_value);
  }
  return w.overflow ? 0 : w.len;
}

size_t fl_msg_sqal_sample(const fl_envelope_t *e, const fl_sqal_sample_t *s, uint8_t *out, size_t cap) {
  fl_cbor_writer_t w;
  fl_cbor_writer_init(&w, out, cap);
  envelope(&w, e, 3 + (s->lot ? 1 : 0) + (s->idx >= 0 ? 1 : 0) + (s->has_temp ? 1 : 0));
  fl_cbor_put_text(&w, "sample"), fl_cbor_put_text(&w, s->sample);
  if (s->lot) fl_cbor_put_text(&w, "lot"), fl_cbor_put_text(&w, s->lot);
  if (s->idx >= 0) fl_cbor_put_text(&w, "idx"), fl_cbor_put_uint(&w, (uint64_t)s->idx);
  fl_cbor_put_text(&w, "tof"), fl_cbor_put_map(&w, 6);
  fl_cbor_put_text(&w, "dist"), fl_cbor_put_u16_array(&w, s->tof.dist, 64);
  fl_cbor_put_text(&w, "status"), fl_cbor_put_u8_array(&w, s->tof.status, 64);
  fl_cbor_put_text(&w, "refl"), fl_cbor_put_u8_array(&w, s->tof.refl, 64);
  fl_cbor_put_text(&w, "amp"), fl_cbor_put_u16_array(&w, s->tof.amp, 64);
  fl_cbor_put_text(&w, "amb"), fl_cbor_put_uint(&w, s->tof.amb);
  fl_cbor_put_text(&w, "h"), fl_cbor_put_uint(&w, s->tof.h);
  const fl_spectral_t *p = &s->spec;
  fl_cbor_put_text(&w, "spec"), fl_cbor_put_map(&w, 13);
  fl_cbor_put_text(&w, "f1"), fl_cbor_put_uint(&w, p->f1);
  fl_cbor_put_text(&w, "f2"), fl_cbor_put_uint(&w, p->f2);
  fl_cbor_put_text(&w, "f3"), fl_cbor_put_uint(&w, p->f3);
  fl_cbor_put_text(&w, "f4"), fl_cbor_put_uint(&w, p->f4);
  fl_cbor_put_text(&w, "f5"), fl_cbor_put_uint(&w, p->f5);
  fl_cbor_put_text(&w, "f6"), fl_cbor_put_uint(&w, p->f6);
  fl_cbor_put_text(&w, "f7"), fl_cbor_put_uint(&w, p->f7);
  fl_cbor_put_text(&w, "f8"), fl_cbor_put_uint(&w, p->f8);
  fl_cbor_put_text(&w, "clear"), fl_cbor_put_uint(&w, p->clear);
  fl_cbor_put_text(&w, "nir"), fl_cbor_put_uint(&w, p->nir);
  fl_cbor_put_text(&w, "gain"), fl_cbor_put_uint(&w, p->gain);
  fl_cbor_put_text(&w, "atime"), fl_cbor_put_uint(&w, p->atime);
  fl_cbor_put_text(&w, "astep"), fl_cbor_put_uint(&w, p->astep);
  if (s->has_temp) fl_cbor_put_text(&w, "temp"), fl_cbor_put_number(&w, s->temp);
  return w.overflow ? 0 : w.len;
}

size_t fl_msg_event(const fl_envelope_t *e, const char *type, const char *sev, const char *msg, uint8_t *out, size_t cap) {
  fl_cbor_writer_t w;
  fl_cbor_writer_init(&w, out, cap);
  envelope(&w, e, msg ? 3 : 2);
  fl_cbor_put_text(&w, "type"), fl_cbor_put_text(&w, type);
  fl_cbor_put_text(&w, "sev"), fl_cbor_put_text(&w, sev);
  if (msg) fl_cbor_put_text(&w, "msg"), fl_cbor_put_text(&w, msg);
  return w.overflow ? 0 : w.len;
}
