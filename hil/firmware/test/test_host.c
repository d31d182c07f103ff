/* Host-side unit tests of the portable link code against the shared golden vectors:
   make -C hil/firmware test */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "fl_cbor.h"
#include "fl_cobs.h"
#include "fl_crc32.h"
#include "fl_frame.h"
#include "fl_msg.h"
#include "vectors_gen.h"

static int failures = 0, checks = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    checks++;                                              \
    if (!(cond)) {                                         \
      failures++;                                          \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);          \
      printf(__VA_ARGS__);                                 \
      printf("\n");                                        \
    }                                                      \
  } while (0)
#define N(a) (sizeof(a) / sizeof((a)[0]))

static uint8_t buf[16384], buf2[16384], scratch[16384];
static char text[65536], text2[65536];

static void test_crc_cobs(void) {
  CHECK(fl_crc32((const uint8_t *)"123456789", 9) == 0xCBF43926u, "crc32 check value");
  const uint8_t in[] = {0x11, 0x22, 0x00, 0x33};
  size_t n = fl_cobs_encode(in, 4, buf, sizeof buf);
  CHECK(n == 5 && memcmp(buf, "\x03\x11\x22\x02\x33", 5) == 0, "cobs textbook example");
  for (int len = 0; len < 700; len += 7) {
    for (int i = 0; i < len; i++) buf2[i] = (uint8_t)(i * 37 % 5 == 0 ? 0 : i * 13 + 1);
    size_t e = fl_cobs_encode(buf2, (size_t)len, buf, sizeof buf);
    CHECK(memchr(buf, 0, e) == NULL, "cobs output has no zero (len %d)", len);
    long d = fl_cobs_decode(buf, e, scratch, sizeof scratch);
    CHECK(d == len && memcmp(scratch, buf2, (size_t)len) == 0, "cobs round trip len %d", len);
  }
}

static void test_frame_vectors(void) {
  for (size_t i = 0; i < N(FRAME_VECTORS); i++) {
    const frame_vector_t *v = &FRAME_VECTORS[i];
    size_t n = hex_decode(v->hex, buf, sizeof buf);
    CHECK(n > 1 && buf[n - 1] == 0, "%s: ends with 0x00", v->name);
    uint8_t type;
    const uint8_t *body;
    size_t blen;
    int rc = fl_frame_decode(buf, n - 1, &type, &body, &blen);
    CHECK(rc == FL_OK, "%s: decodes (rc %d)", v->name, rc);
    if (rc != FL_OK) continue;
    CHECK(type == v->type, "%s: type %d", v->name, type);
    cbor_diag(body, blen, text, sizeof text);
    CHECK(strcmp(text, v->body_diag) == 0, "%s: body\n  got  %s\n  want %s", v->name, text, v->body_diag);
    /* and re-encoding the same body gives the same wire bytes */
    size_t w = fl_frame_encode(type, body, blen, scratch, sizeof scratch, buf2, sizeof buf2);
    hex_encode(buf2, w, text2);
    CHECK(strcmp(text2, v->hex) == 0, "%s: re-encodes", v->name);
  }
}

static void expect_frame(const char *name, uint8_t type, const uint8_t *body, size_t blen) {
  for (size_t i = 0; i < N(FRAME_VECTORS); i++) {
    if (strcmp(FRAME_VECTORS[i].name, name) != 0) continue;
    size_t w = fl_frame_encode(type, body, blen, scratch, sizeof scratch, buf2, sizeof buf2);
    hex_encode(buf2, w, text2);
    CHECK(strcmp(text2, FRAME_VECTORS[i].hex) == 0, "%s: built by C\n  got  %s\n  want %s", name, text2, FRAME_VECTORS[i].hex);
    return;
  }
  CHECK(0, "no vector named %s", name);
}

static void test_builders(void) {
  static const char *caps[] = {"tof", "spectral", "cmd:inspect", "cmd:status"};
  fl_hello_t h = {"ESP32_LL_01", "sqal", "LL", "1.0.0", caps, 4, 3, 2000, 305419896u, NULL, 0};
  uint8_t body[512];
  size_t n = fl_body_hello(&h, body, sizeof body);
  expect_frame("device hello", FL_HELLO, body, n);
  const char *line = "I2C scan: 0x29 0x39";
  n = fl_body_publish(1, "log", NULL, (const uint8_t *)line, strlen(line), body, sizeof body);
  expect_frame("publish log line", FL_PUBLISH, body, n);
  n = fl_body_ack(70000, body, sizeof body);
  expect_frame("ack", FL_ACK, body, n);
  n = fl_body_ack(4294967295u, body, sizeof body);
  expect_frame("ack max", FL_ACK, body, n);
  n = fl_body_heartbeat(5000000000ull, 12, 1, 0, body, sizeof body);
  expect_frame("heartbeat", FL_HEARTBEAT, body, n);

  /* parse the command vector */
  for (size_t i = 0; i < N(FRAME_VECTORS); i++) {
    if (strcmp(FRAME_VECTORS[i].name, "command inspect") != 0) continue;
    size_t len = hex_decode(FRAME_VECTORS[i].hex, buf, sizeof buf);
    uint8_t type;
    const uint8_t *b;
    size_t blen;
    fl_command_t c;
    CHECK(fl_frame_decode(buf, len - 1, &type, &b, &blen) == FL_OK && type == FL_COMMAND, "command decodes");
    CHECK(fl_parse_command(b, blen, &c) && c.ls == 7 && strcmp(c.name, "inspect") == 0, "command fields");
    fl_cbor_reader_t r;
    fl_cbor_item_t it;
    fl_cbor_reader_init(&r, c.p, c.plen);
    CHECK(fl_cbor_map_find(&r, "lot") && fl_cbor_read(&r, &it) && fl_cbor_item_is_text(&it, "LL2512001"), "command lot");
    fl_cbor_reader_init(&r, c.p, c.plen);
    CHECK(fl_cbor_map_find(&r, "n") && fl_cbor_read(&r, &it) && it.type == FL_CBOR_UINT && it.u == 5, "command n");
  }
}

static void test_bad_frames(void) {
  for (size_t i = 0; i < N(BAD_FRAME_VECTORS); i++) {
    const bad_frame_vector_t *v = &BAD_FRAME_VECTORS[i];
    size_t n = hex_decode(v->hex, buf, sizeof buf);
    uint8_t type;
    const uint8_t *body;
    size_t blen;
    int rc = fl_frame_decode(buf, n, &type, &body, &blen);
    uint32_t ls;
    if (rc == FL_OK && type == FL_ACK && !fl_parse_ack(body, blen, &ls)) rc = FL_ERR_BODY;
    CHECK(rc == v->error, "%s: error %d, want %d", v->name, rc, v->error);
  }
  /* every single-bit flip of a frame is rejected */
  size_t n = hex_decode(FRAME_VECTORS[0].hex, buf2, sizeof buf2) - 1;
  int accepted = 0;
  for (size_t bit = 0; bit < n * 8; bit++) {
    memcpy(buf, buf2, n);
    buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    uint8_t type;
    const uint8_t *body;
    size_t blen;
    if (memchr(buf, 0, n) == NULL && fl_frame_decode(buf, n, &type, &body, &blen) == FL_OK) accepted++;
  }
  CHECK(accepted == 0, "%d corrupted frames accepted", accepted);
}

static void test_cbor_vectors(void) {
  for (size_t i = 0; i < N(CBOR_VECTORS); i++) {
    const cbor_vector_t *v = &CBOR_VECTORS[i];
    size_t n = hex_decode(v->hex, buf, sizeof buf);
    cbor_diag(buf, n, text, sizeof text);
    CHECK(strcmp(text, v->diag) == 0, "%s:\n  got  %s\n  want %s", v->name, text, v->diag);
  }
}

static const char *cbor_vector_hex(const char *name) {
  for (size_t i = 0; i < N(CBOR_VECTORS); i++)
    if (strcmp(CBOR_VECTORS[i].name, name) == 0) return CBOR_VECTORS[i].hex;
  return "";
}

/* The encoder produces the wire contract's vectors byte for byte (these come from an encoder written
   independently of both codecs: schemas/vectors/make_vectors.py). */
static void expect_cbor(const char *name, const uint8_t *p, size_t n) {
  hex_encode(p, n, text);
  CHECK(n > 0 && strcmp(text, cbor_vector_hex(name)) == 0, "%s built by C\n  got  %s\n  want %s", name, text, cbor_vector_hex(name));
}

static void test_cbor_encoder(void) {
  fl_cbor_writer_t w;
  fl_envelope_t env = {"ESP32_LL_01", 7, 42, 1764547200123ull};
  fl_status_t birth = {"online", "power_on", true, 30, 182344, -61, {12, 0, 0, 1, 0}};
  expect_cbor("status birth", buf, fl_msg_status(&env, &birth, buf, sizeof buf));
  fl_envelope_t env43 = env;
  env43.seq = 43;
  fl_status_t will = {"offline", NULL, false, 0, 0, 0, {0, 0, 0, 0, 0}};
  expect_cbor("status will", buf, fl_msg_status(&env43, &will, buf, sizeof buf));
  expect_cbor("command reply", buf, fl_msg_reply(&env, "c-1", true, NULL, "samples", 5, buf, sizeof buf));
  static fl_sqal_sample_t s;
  s.sample = "S-7-42", s.lot = "LL2512001", s.idx = 2;
  for (int r = 0; r < 8; r++)
    for (int c = 0; c < 8; c++) s.tof.dist[r * 8 + c] = (uint16_t)(100 - (20 + (r * 8 + c) % 60));
  for (int i = 0; i < 64; i++) {
    s.tof.status[i] = i == 63 ? 255 : 5;
    s.tof.refl[i] = (uint8_t)(40 + i % 20);
    s.tof.amp[i] = (uint16_t)(1000 + 10 * i);
  }
  s.tof.amb = 3, s.tof.h = 100;
  fl_spectral_t spec = {400, 600, 500, 1900, 900, 600, 1150, 750, 6500, 600, 3, 29, 599};
  s.spec = spec;
  s.has_temp = true, s.temp = 24.5;
  expect_cbor("sqal sample (typed arrays)", buf, fl_msg_sqal_sample(&env, &s, buf, sizeof buf));
  /* numbers: JS semantics */
  struct { double v; const char *hex; } nums[] = {
      {0, "00"}, {23, "17"}, {24, "1818"}, {65535, "19ffff"}, {4294967295.0, "1affffffff"},
      {1764547200123.0, "1b0000019ad735847b"}, {-1, "20"}, {-25, "3818"}, {-999, "3903e6"},
      {5.12, "fa40a3d70a"}, {24.5, "fa41c40000"}, {0.1, "fa3dcccccd"}, {1.0 / 3.0, "fb3fd5555555555555"},
      {-999.0, "3903e6"}, {3.14159265358979, "fb400921fb54442d11"}, {380.25, "fa43be2000"},
  };
  for (size_t i = 0; i < N(nums); i++) {
    fl_cbor_writer_init(&w, buf, sizeof buf);
    fl_cbor_put_number(&w, nums[i].v);
    hex_encode(buf, w.len, text);
    CHECK(strcmp(text, nums[i].hex) == 0, "number %.17g: got %s want %s", nums[i].v, text, nums[i].hex);
  }
  uint16_t u16[3] = {1, 0x0203, 0xFFFF};
  uint8_t u8[2] = {5, 255};
  fl_cbor_writer_init(&w, buf, sizeof buf);
  fl_cbor_put_u16_array(&w, u16, 3);
  fl_cbor_put_u8_array(&w, u8, 2);
  hex_encode(buf, w.len, text);
  CHECK(strcmp(text, "d8454601000302ffff" "d840420" "5ff") == 0, "typed arrays: %s", text);
  uint16_t small[3] = {0, 7, 255}; /* every value fits in a byte: sent as a uint8 array (tag 64) */
  fl_cbor_writer_init(&w, buf, sizeof buf);
  fl_cbor_put_u16_array(&w, small, 3);
  hex_encode(buf, w.len, text);
  CHECK(strcmp(text, "d8404300" "07ff") == 0, "narrowed uint16 array: %s", text);
  fl_cbor_writer_init(&w, buf, 3);
  fl_cbor_put_text(&w, "toolong");
  CHECK(w.overflow, "writer reports overflow");
}

static void test_rx_stream(void) {
  /* boot text + frame + garbage + frame, byte by byte */
  fl_rx_t rx;
  fl_rx_init(&rx);
  const char *boot = "ets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET)\r\n";
  const char *ack_hex = "";
  for (size_t i = 0; i < N(FRAME_VECTORS); i++)
    if (strcmp(FRAME_VECTORS[i].name, "ack") == 0) ack_hex = FRAME_VECTORS[i].hex;
  size_t a = hex_decode(ack_hex, buf2, sizeof buf2);
  uint8_t stream[512];
  size_t s = 0;
  stream[s++] = 0;
  memcpy(stream + s, boot, strlen(boot)), s += strlen(boot);
  stream[s++] = 0;
  memcpy(stream + s, buf2, a), s += a;
  const uint8_t garbage[] = {0x13, 0x80, 0xFF, 0x00};
  memcpy(stream + s, garbage, 4), s += 4;
  memcpy(stream + s, buf2, a), s += a;
  int frames = 0, text_blocks = 0, bad = 0;
  for (size_t i = 0; i < s; i++) {
    if (!fl_rx_push(&rx, stream[i])) continue;
    uint8_t type;
    const uint8_t *body;
    size_t blen;
    bool printable = true;
    for (size_t k = 0; k < rx.len; k++)
      if (rx.buf[k] < 0x09 || (rx.buf[k] > 0x0d && rx.buf[k] < 0x20)) printable = false;
    if (printable) text_blocks++;
    else if (fl_frame_decode(rx.buf, rx.len, &type, &body, &blen) == FL_OK && type == FL_ACK) frames++;
    else bad++;
    rx.len = 0;
  }
  CHECK(frames == 2 && text_blocks == 1 && bad == 1, "stream: %d frames, %d text, %d bad", frames, text_blocks, bad);
}

int main(void) {
  test_crc_cobs();
  test_frame_vectors();
  test_builders();
  test_bad_frames();
  test_cbor_vectors();
  test_cbor_encoder();
  test_rx_stream();
  printf("%d checks, %d failures (%zu frame vectors, %zu bad frames, %zu CBOR message vectors)\n", checks, failures,
         N(FRAME_VECTORS), N(BAD_FRAME_VECTORS), N(CBOR_VECTORS));
  return failures ? 1 : 0;
}
