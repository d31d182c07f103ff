/* esp-fleet serial link frames (DESIGN §4), same as hil/src/frames.ts:
     COBS( type:u8 || CBOR body || crc32-le(type || body) ) || 0x00                                  */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_cbor.h"
#include "fl_cobs.h"
#ifdef __cplusplus
extern "C" {
#endif

#define FL_PROTOCOL_VERSION 1
#define FL_MAX_FRAME 4096 /* type + body + CRC */
#define FL_MAX_ENCODED FL_COBS_MAX_ENCODED(FL_MAX_FRAME)

enum { FL_HELLO = 1, FL_PUBLISH = 2, FL_COMMAND = 3, FL_ACK = 4, FL_HEARTBEAT = 5 };
enum { FL_OK = 0, FL_ERR_COBS = 1, FL_ERR_LENGTH = 2, FL_ERR_CRC = 3, FL_ERR_TYPE = 4, FL_ERR_BODY = 5 };

/* Build a complete wire frame (trailing 0x00 included) from a type and a CBOR body.
   Returns its length, 0 if it exceeds FL_MAX_FRAME or `cap`. `scratch` needs body_len + 5 bytes. */
size_t fl_frame_encode(uint8_t type, const uint8_t *body, size_t body_len, uint8_t *scratch, size_t scratch_cap,
                       uint8_t *out, size_t cap);

/* Decode one block found between delimiters (no 0x00), in place. On FL_OK, *type, *body and *body_len
   point into `block`. Checks COBS, length, CRC and type — never returns FL_OK for a corrupted frame. */
int fl_frame_decode(uint8_t *block, size_t len, uint8_t *type, const uint8_t **body, size_t *body_len);

/* Streaming receiver: push bytes one at a time; returns true when a block is complete (then call
   fl_frame_decode on rx->buf/rx->len, or treat printable text as console). Oversize blocks are dropped
   up to the next delimiter and counted. */
typedef struct {
  uint8_t buf[FL_MAX_ENCODED];
  size_t len;
  bool discarding;
  uint32_t oversize;
} fl_rx_t;
void fl_rx_init(fl_rx_t *rx);
bool fl_rx_push(fl_rx_t *rx, uint8_t byte);

/* ---- frame bodies ---- */
typedef struct {
  const char *dev, *kind, *site, *fw;
  const char *const *caps;
  size_t ncaps;
  uint32_t boot, hb_ms, sid;
  const uint8_t *will; /* optional status:offline payload */
  size_t will_len;
} fl_hello_t;

size_t fl_body_hello(const fl_hello_t *h, uint8_t *out, size_t cap);
/* ch: telemetry|status|meta|event|log|cmd_res; cmd: the command name for cmd_res, else NULL */
size_t fl_body_publish(uint32_t ls, const char *ch, const char *cmd, const uint8_t *p, size_t plen, uint8_t *out, size_t cap);
size_t fl_body_ack(uint32_t ls, uint8_t *out, size_t cap);
size_t fl_body_heartbeat(uint64_t up_ms, uint32_t tx, uint32_t rt, uint32_t bad, uint8_t *out, size_t cap);

typedef struct {
  uint32_t ls;
  char name[65];
  const uint8_t *p;
  size_t plen;
} fl_command_t;
bool fl_parse_command(const uint8_t *body, size_t len, fl_command_t *out);
bool fl_parse_ack(const uint8_t *body, size_t len, uint32_t *ls);
/* A host hello: role "host"; its session id, and whether it asks for the device's hello. */
bool fl_parse_host_hello(const uint8_t *body, size_t len, uint32_t *sid, bool *ask);

#ifdef __cplusplus
}
#endif
