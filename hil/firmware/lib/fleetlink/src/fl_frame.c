#include "fl_frame.h"

#include <string.h>

#include "fl_crc32.h"

size_t fl_frame_encode(uint8_t type, const uint8_t *body, size_t body_len, uint8_t *scratch, size_t scratch_cap,
                       uint8_t *out, size_t cap) {
  size_t n = 1 + body_len + 4;
  if (n > FL_MAX_FRAME || n > scratch_cap) return 0;
  scratch[0] = type;
  memcpy(scratch + 1, body, body_len);
  uint32_t crc = fl_crc32(scratch, 1 + body_len);
  for (int i = 0; i < 4; i++) scratch[1 + body_len + i] = (uint8_t)(crc >> (8 * i));
  if (cap < 1) return 0;
  size_t e = fl_cobs_encode(scratch, n, out, cap - 1);
  if (!e) return 0;
  out[e] = 0;
  return e + 1;
}

int fl_frame_decode(uint8_t *block, size_t len, uint8_t *type, const uint8_t **body, size_t *body_len) {
  if (len > FL_MAX_ENCODED) return FL_ERR_LENGTH;
  long n = fl_cobs_decode(block, len, block, len);
  if (n < 0) return FL_ERR_COBS;
  if (n < 6 || n > FL_MAX_FRAME) return FL_ERR_LENGTH;
  uint32_t want = (uint32_t)block[n - 4] | (uint32_t)block[n - 3] << 8 | (uint32_t)block[n - 2] << 16 | (uint32_t)block[n - 1] << 24;
  if (fl_crc32(block, (size_t)n - 4) != want) return FL_ERR_CRC;
  if (block[0] < FL_HELLO || block[0] > FL_HEARTBEAT) return FL_ERR_TYPE;
  *type = block[0];
  *body = block + 1;
  *body_len = (size_t)n - 5;
  /* the body must be exactly one well-formed CBOR item */
  fl_cbor_reader_t r;
  fl_cbor_reader_init(&r, *body, *body_len);
  if (!fl_cbor_skip(&r) || r.pos != *body_len) return FL_ERR_BODY;
  return FL_OK;
}

void fl_rx_init(fl_rx_t *rx) {
  rx->len = 0;
  rx->discarding = false;
  rx->oversize = 0;
}

bool fl_rx_push(fl_rx_t *rx, uint8_t byte) {
  if (byte == 0) {
    bool was = rx->discarding;
    rx->discarding = false;
    if (was) {
      rx->len = 0;
      return false;
    }
    return rx->len > 0; /* caller consumes buf/len, then sets len = 0 */
  }
  if (rx->discarding) return false;
  if (rx->len >= sizeof rx->buf) {
    rx->discarding = true;
    rx->oversize++;
    rx->len = 0;
    return false;
  }
  rx->buf[rx->len++] = byte;
  return false;
}

/* ---- bodies (key order = the TypeScript objects', so both sides produce the same bytes) ---- */

size_t fl_body_hello(const fl_hello_t *h, uint8_t *out, size_t cap) {
  fl_cbor_writer_t w;
  fl_cbor_writer_init(&w, out, cap);
  fl_cbor_put_map(&w, h->will ? 11 : 10);
  fl_cbor_put_text(&w, "role"), fl_cbor_put_text(&w, "device");
  fl_cbor_put_text(&w, "proto"), fl_cbor_put_uint(&w, FL_PROTOCOL_VERSION);
  fl_cbor_put_text(&w, "dev"), fl_cbor_put_text(&w, h->dev);
  fl_cbor_put_text(&w, "kind"), fl_cbor_put_text(&w, h->kind);
  fl_cbor_put_text(&w, "site"), fl_cbor_put_text(&w, h->site);
  fl_cbor_put_text(&w, "fw"), fl_cbor_put_text(&w, h->fw);
  fl_cbor_put_text(&w, "caps"), fl_cbor_put_array(&w, h->ncaps);
  for (size_t i = 0; i < h->ncaps; i++) fl_cbor_put_text(&w, h->caps[i]);
  fl_cbor_put_text(&w, "boot"), fl_cbor_put_uint(&w, h->boot);
  fl_cbor_put_text(&w, "hb"), fl_cbor_put_uint(&w, h->hb_ms);
  fl_cbor_put_text(&w, "sid"), fl_cbor_put_uint(&w, h->sid);
  if (h->will) fl_cbor_put_text(&w, "will"), fl_cbor_put_bytes(&w, h->will, h->will_len);
  return w.overflow ? 0 : w.len;
}

size_t fl_body_publish(uint32_t ls, const char *ch, const char *cmd, const uint8_t *p, size_t plen, uint8_t *out, size_t cap) {
  fl_cbor_writer_t w;
  fl_cbor_writer_init(&w, out, cap);
  fl_cbor_put_map(&w, cmd ? 4 : 3);
  fl_cbor_put_text(&w, "ls"), fl_cbor_put_uint(&w, ls);
  fl_cbor_put_text(&w, "ch"), fl_cbor_put_text(&w, ch);
  if (cmd) fl_cbor_put_text(&w, "cmd"), fl_cbor_put_text(&w, cmd);
  fl_cbor_put_text(&w, "p"), fl_cbor_put_bytes(&w, p, plen);
  return w.overflow ? 0 : w.len;
}

size_t fl_body_ack(uint32_t ls, uint8_t *out, size_t cap) {
  fl_cbor_writer_t w;
  fl_cbor_writer_init(&w, out, cap);
  fl_cbor_put_map(&w, 1);
  fl_cbor_put_text(&w, "ls"), fl_cbor_put_uint(&w, ls);
  return w.overflow ? 0 : w.len;
}

size_t fl_body_heartbeat(uint64_t up_ms, uint32_t tx, uint32_t rt, uint32_t bad, uint8_t *out, size_t cap) {
  fl_cbor_writer_t w;
  fl_cbor_writer_init(&w, out, cap);
  fl_cbor_put_map(&w, 4);
  fl_cbor_put_text(&w, "up"), fl_cbor_put_uint(&w, up_ms);
  fl_cbor_put_text(&w, "tx"), fl_cbor_put_uint(&w, tx);
  fl_cbor_put_text(&w, "rt"), fl_cbor_put_uint(&w, rt);
  fl_cbor_put_text(&w, "bad"), fl_cbor_put_uint(&w, bad);
  return w.overflow ? 0 : w.len;
}

static bool find_uint32(const uint8_t *body, size_t len, const char *key, uint32_t *out) {
  fl_cbor_reader_t r;
  fl_cbor_item_t it;
  fl_cbor_reader_init(&r, body, len);
  if (!fl_cbor_map_find(&r, key) || !fl_cbor_read(&r, &it) || it.type != FL_CBOR_UINT || it.u > 0xFFFFFFFFu) return false;
  *out = (uint32_t)it.u;
  return true;
}

bool fl_parse_ack(const uint8_t *body, size_t len, uint32_t *ls) { return find_uint32(body, len, "ls", ls); }

bool fl_parse_command(const uint8_t *body, size_t len, fl_command_t *out) {
  fl_cbor_reader_t r;
  fl_cbor_item_t it;
  if (!find_uint32(body, len, "ls", &out->ls)) return false;
  fl_cbor_reader_init(&r, body, len);
  if (!fl_cbor_map_find(&r, "name") || !fl_cbor_read(&r, &it) || it.type != FL_CBOR_TEXT || it.len == 0 || it.len > 64) return false;
  memcpy(out->name, it.ptr, it.len);
  out->name[it.len] = 0;
  fl_cbor_reader_init(&r, body, len);
  if (!fl_cbor_map_find(&r, "p") || !fl_cbor_read(&r, &it) || it.type != FL_CBOR_BYTES) return false;
  out->p = it.ptr;
  out->plen = it.len;
  return true;
}

bool fl_parse_host_hello(const uint8_t *body, size_t len, uint32_t *sid, bool *ask) {
  fl_cbor_reader_t r;
  fl_cbor_item_t it;
  fl_cbor_reader_init(&r, body, len);
  if (!fl_cbor_map_find(&r, "role") || !fl_cbor_read(&r, &it) || !fl_cbor_item_is_text(&it, "host")) return false;
  fl_cbor_reader_init(&r, body, len);
  *ask = fl_cbor_map_find(&r, "ask") && fl_cbor_read(&r, &it) && it.type == FL_CBOR_TRUE;
  return find_uint32(body, len, "sid", sid);
}
