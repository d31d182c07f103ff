/* Host tool over the portable link code, for C <-> TypeScript round-trip tests:
     frametool hello DEV KIND SITE FW BOOT HB SID     print a device hello frame (hex)
     frametool publish LS CH PAYLOAD_HEX              CH may be cmd_res:NAME
     frametool ack LS
     frametool read                                   decode a raw byte stream from stdin, one line per block:
                                                      "<type> <body diag>" | "text <len>" | "bad <code>"   */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "fl_frame.h"

static uint8_t body[FL_MAX_FRAME], scratch[FL_MAX_FRAME + 8], wire[FL_MAX_ENCODED + 1], payload[FL_MAX_FRAME];
static char out[4 * FL_MAX_ENCODED + 64];
static const char *TYPES[] = {"?", "hello", "publish", "command", "ack", "heartbeat"};

static int print_frame(uint8_t type, size_t blen) {
  size_t n = fl_frame_encode(type, body, blen, scratch, sizeof scratch, wire, sizeof wire);
  if (!blen || !n) return fprintf(stderr, "frame too large\n"), 1;
  hex_encode(wire, n, out);
  puts(out);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 9 && strcmp(argv[1], "hello") == 0) {
    fl_hello_t h = {argv[2], argv[3], argv[4], argv[5], NULL, 0, (uint32_t)strtoul(argv[6], 0, 10),
                    (uint32_t)strtoul(argv[7], 0, 10), (uint32_t)strtoul(argv[8], 0, 10), NULL, 0};
    return print_frame(FL_HELLO, fl_body_hello(&h, body, sizeof body));
  }
  if (argc >= 5 && strcmp(argv[1], "publish") == 0) {
    size_t plen = hex_decode(argv[4], payload, sizeof payload);
    char ch[64];
    snprintf(ch, sizeof ch, "%s", argv[3]);
    char *cmd = strchr(ch, ':');
    if (cmd) *cmd++ = 0;
    return print_frame(FL_PUBLISH, fl_body_publish((uint32_t)strtoul(argv[2], 0, 10), ch, cmd, payload, plen, body, sizeof body));
  }
  if (argc >= 3 && strcmp(argv[1], "ack") == 0) return print_frame(FL_ACK, fl_body_ack((uint32_t)strtoul(argv[2], 0, 10), body, sizeof body));
  if (argc >= 2 && strcmp(argv[1], "read") == 0) {
    static fl_rx_t rx;
    fl_rx_init(&rx);
    int c;
    while ((c = getchar()) != EOF) {
      if (!fl_rx_push(&rx, (uint8_t)c)) continue;
      bool text = true;
      for (size_t k = 0; k < rx.len; k++)
        if (rx.buf[k] < 0x09 || (rx.buf[k] > 0x0d && rx.buf[k] < 0x20)) text = false;
      uint8_t type;
      const uint8_t *b;
      size_t blen;
      int rc;
      if (text) printf("text %zu\n", rx.len);
      else if ((rc = fl_frame_decode(rx.buf, rx.len, &type, &b, &blen)) == FL_OK) {
        cbor_diag(b, blen, out, sizeof out);
        printf("%s %s\n", TYPES[type], out);
      } else printf("bad %d\n", rc);
      rx.len = 0;
    }
    return 0;
  }
  fprintf(stderr, "usage: frametool hello|publish|ack|read …\n");
  return 2;
}
