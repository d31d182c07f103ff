/*
 * esp-fleet reference firmware: SQAL quality station (VL53L8CH 8x8 ToF + AS7341 spectral) speaking the
 * serial link protocol (DESIGN §4) on the USB UART. The framing, CRC and CBOR live in lib/fleetlink
 * (portable C, host-tested against the same vectors as the TypeScript code); this file is the Arduino
 * shell: sensors, timing, the link state machine and commands.
 *
 * Link: at boot and every second until answered, a device `hello` (with the `status: offline` will);
 * a host `hello` brings the link up -> retained `status: online`, `meta`, then a sample every
 * `interval_ms`. Publishes are reliable: acked by link sequence number, retransmitted after 200 ms x
 * attempt; at most FL_WINDOW in flight, the rest wait in a small FIFO (oldest dropped and counted).
 * Commands: status, config (interval_ms), inspect (lot of n samples), reboot.
 * A sensor missing on the I2C scan is reported in `meta` (ok:false) and its readings are generated
 * (meta cfg.simulated = true), so the station still exercises the whole path.
 */
#include <Adafruit_AS7341.h>
#include <Arduino.h>
#include <Preferences.h>
#include <Wire.h>
#include <vl53l8cx.h>

extern "C" {
#include "fl_cbor.h"
#include "fl_frame.h"
#include "fl_msg.h"
}

#ifndef FL_DEVICE_ID
#define FL_DEVICE_ID "ESP32_LL_01"
#endif
#ifndef FL_SITE
#define FL_SITE "LL"
#endif
#ifndef FL_FW_VERSION
#define FL_FW_VERSION "1.0.0-ref"
#endif
#ifndef FL_BAUD
#define FL_BAUD 921600
#endif

static const uint32_t HB_MS = 2000;
static const uint32_t RETRY_MS = 200;
enum { FL_WINDOW = 4, FL_QUEUE = 8, FL_MSG_MAX = 1024 };

static VL53L8CX tof(&Wire, -1);
static Adafruit_AS7341 as7341;
static bool tof_ok = false, spec_ok = false;
static Preferences prefs;

static uint32_t boot_count, seq_telemetry, seq_status, seq_meta, seq_event, seq_res;
static uint32_t interval_ms = 5000, next_sample_at, last_hb_at, last_hello_at, last_host_frame_at;
static uint32_t host_sid = 0, link_sid;
static bool link_up = false, have_host = false;
static uint32_t next_ls = 0;
static fl_counters_t cnt;
static uint32_t bad_frames = 0, retries = 0;

/* ------------------------------------------------------------------------------------------ link */

struct Pending {
  bool used;
  uint32_t ls, sent_at, attempts;
  size_t len;
  uint8_t wire[FL_MSG_MAX + 64];
};
static Pending inflight[FL_WINDOW];
struct Queued {
  char ch[24];
  char cmd[24];
  size_t len;
  uint8_t p[FL_MSG_MAX];
};
static Queued queue[FL_QUEUE];
static size_t q_head = 0, q_len = 0;

static uint8_t body[FL_MSG_MAX + 64], scratch[FL_MSG_MAX + 128], wire[FL_COBS_MAX_ENCODED(FL_MSG_MAX + 128) + 1];
static uint8_t msg[FL_MSG_MAX], will[128];
static size_t will_len = 0;

static void send_frame(uint8_t type, const uint8_t *b, size_t n) {
  size_t w = fl_frame_encode(type, b, n, scratch, sizeof scratch, wire, sizeof wire);
  if (w) Serial.write(wire, w);
}

static bool transmit(const char *ch, const char *cmd, const uint8_t *p, size_t plen) {
  for (auto &f : inflight) {
    if (f.used) continue;
    size_t n = fl_body_publish(next_ls, ch, cmd, p, plen, body, sizeof body);
    size_t w = n ? fl_frame_encode(FL_PUBLISH, body, n, scratch, sizeof scratch, f.wire, sizeof f.wire) : 0;
    if (!w) return true; /* cannot be framed: dropped rather than stuck */
    f.used = true;
    f.ls = next_ls++;
    f.sent_at = millis();
    f.attempts = 0;
    f.len = w;
    Serial.write(f.wire, f.len);
    cnt.sent++;
    return true;
  }
  return false;
}

static void publish(const char *ch, const char *cmd, const uint8_t *p, size_t plen) {
  if (link_up && q_len == 0 && transmit(ch, cmd, p, plen)) return;
  if (plen > FL_MSG_MAX) return;
  if (q_len == FL_QUEUE) { /* drop the oldest */
    q_head = (q_head + 1) % FL_QUEUE;
    q_len--;
    cnt.dropped++;
  }
  Queued &q = queue[(q_head + q_len++) % FL_QUEUE];
  snprintf(q.ch, sizeof q.ch, "%s", ch);
  snprintf(q.cmd, sizeof q.cmd, "%s", cmd ? cmd : "");
  memcpy(q.p, p, plen);
  q.len = plen;
  cnt.buffered = q_len;
}

static void pump() {
  while (link_up && q_len > 0) {
    Queued &q = queue[q_head];
    if (!transmit(q.ch, q.cmd[0] ? q.cmd : nullptr, q.p, q.len)) break;
    q_head = (q_head + 1) % FL_QUEUE;
    q_len--;
  }
  cnt.buffered = q_len;
  uint32_t now = millis();
  for (auto &f : inflight) {
    if (!f.used) continue;
    uint32_t wait = RETRY_MS * (f.attempts + 1 < 8 ? f.attempts + 1 : 8);
    if (now - f.sent_at >= wait) {
      Serial.write(f.wire, f.len);
      f.sent_at = now;
      f.attempts++;
      retries++;
    }
  }
}

static fl_envelope_t env(uint32_t *seq) {
  fl_envelope_t e = {FL_DEVICE_ID, boot_count, (*seq)++, (uint64_t)0};
  /* No RTC/NTP over a serial link: ms since boot. The bridge/ingest record their own receive time. */
  e.ts_ms = millis();
  return e;
}

static void send_hello() {
  static const char *caps[] = {"VL53L8CH", "AS7341", "cmd:inspect", "cmd:config", "cmd:status", "cmd:reboot"};
  fl_hello_t h = {FL_DEVICE_ID, "sqal", FL_SITE, FL_FW_VERSION, caps, 6, boot_count, HB_MS, link_sid, will, will_len};
  size_t n = fl_body_hello(&h, body, sizeof body);
  if (n) send_frame(FL_HELLO, body, n);
  last_hello_at = millis();
}

/* ------------------------------------------------------------------------------------------ messages */

static void publish_status(const char *state, const char *reason) {
  fl_envelope_t e = env(&seq_status);
  fl_status_t s = {state, reason, true, millis() / 1000, ESP.getFreeHeap(), 0, cnt};
  size_t n = fl_msg_status(&e, &s, msg, sizeof msg);
  if (n) publish("status", nullptr, msg, n);
}

static void publish_meta() {
  fl_envelope_t e = env(&seq_meta);
  fl_cbor_writer_t w;
  fl_cbor_writer_init(&w, msg, sizeof msg);
  fl_cbor_put_map(&w, 5 + 6);
  fl_cbor_put_text(&w, "v"), fl_cbor_put_uint(&w, 1);
  fl_cbor_put_text(&w, "dev"), fl_cbor_put_text(&w, e.dev);
  fl_cbor_put_text(&w, "boot"), fl_cbor_put_uint(&w, e.boot);
  fl_cbor_put_text(&w, "seq"), fl_cbor_put_uint(&w, e.seq);
  fl_cbor_put_text(&w, "ts"), fl_cbor_put_uint(&w, e.ts_ms);
  fl_cbor_put_text(&w, "kind"), fl_cbor_put_text(&w, "sqal");
  fl_cbor_put_text(&w, "site"), fl_cbor_put_text(&w, FL_SITE);
  fl_cbor_put_text(&w, "fw"), fl_cbor_put_text(&w, FL_FW_VERSION);
  char mac[18];
  uint64_t m = ESP.getEfuseMac();
  snprintf(mac, sizeof mac, "%02X:%02X:%02X:%02X:%02X:%02X", (int)(m & 0xff), (int)(m >> 8 & 0xff), (int)(m >> 16 & 0xff),
           (int)(m >> 24 & 0xff), (int)(m >> 32 & 0xff), (int)(m >> 40 & 0xff));
  fl_cbor_put_text(&w, "mac"), fl_cbor_put_text(&w, mac);
  fl_cbor_put_text(&w, "sensors"), fl_cbor_put_array(&w, 2);
  fl_cbor_put_map(&w, tof_ok ? 3 : 4);
  fl_cbor_put_text(&w, "name"), fl_cbor_put_text(&w, "VL53L8CH");
  fl_cbor_put_text(&w, "addr"), fl_cbor_put_uint(&w, 0x29);
  fl_cbor_put_text(&w, "ok"), fl_cbor_put_bool(&w, tof_ok);
  if (!tof_ok) fl_cbor_put_text(&w, "err"), fl_cbor_put_text(&w, "not found on I2C; readings are generated");
  fl_cbor_put_map(&w, spec_ok ? 3 : 4);
  fl_cbor_put_text(&w, "name"), fl_cbor_put_text(&w, "AS7341");
  fl_cbor_put_text(&w, "addr"), fl_cbor_put_uint(&w, 0x39);
  fl_cbor_put_text(&w, "ok"), fl_cbor_put_bool(&w, spec_ok);
  if (!spec_ok) fl_cbor_put_text(&w, "err"), fl_cbor_put_text(&w, "not found on I2C; readings are generated");
  fl_cbor_put_text(&w, "cfg"), fl_cbor_put_map(&w, 2);
  fl_cbor_put_text(&w, "interval_ms"), fl_cbor_put_uint(&w, interval_ms);
  fl_cbor_put_text(&w, "simulated"), fl_cbor_put_bool(&w, !(tof_ok && spec_ok));
  if (!w.overflow) publish("meta", nullptr, msg, w.len);
}

static void read_sample(fl_sqal_sample_t *s) {
  bool got_tof = false;
  if (tof_ok) {
    static VL53L8CX_ResultsData r;
    uint8_t ready = 0;
    for (int i = 0; i < 20 && !ready; i++) {
      if (tof.check_data_ready(&ready) != 0) break;
      if (!ready) delay(5);
    }
    if (ready && tof.get_ranging_data(&r) == 0) {
      for (int z = 0; z < 64; z++) {
        s->tof.dist[z] = (uint16_t)(r.distance_mm[z] < 0 ? 0 : r.distance_mm[z]);
        s->tof.status[z] = r.target_status[z];
        s->tof.refl[z] = r.reflectance[z];
        uint32_t amp = r.signal_per_spad[z];
        s->tof.amp[z] = (uint16_t)(amp > 4095 ? 4095 : amp);
      }
      s->tof.amb = (uint16_t)r.ambient_per_spad[27];
      got_tof = true;
    } else cnt.i2c_err++;
  }
  if (!got_tof) { /* generated: an ellipsoid-ish lobe 80 mm high under a sensor 100 mm above the tray */
    for (int y = 0; y < 8; y++)
      for (int x = 0; x < 8; x++) {
        float dx = (x - 3.5f) / 3.2f, dy = (y - 3.5f) / 2.2f, h = 80.0f * (1.0f - dx * dx - dy * dy);
        int z = y * 8 + x;
        s->tof.dist[z] = (uint16_t)(100 - (h > 5 ? h : 5) + random(-2, 3));
        s->tof.status[z] = 5;
        s->tof.refl[z] = (uint8_t)(40 + random(0, 10));
        s->tof.amp[z] = (uint16_t)(1500 + random(0, 500));
      }
    s->tof.amb = 3;
  }
  s->tof.h = 100;
  fl_spectral_t &p = s->spec;
  p.gain = 3, p.atime = 29, p.astep = 599;
  if (spec_ok && as7341.readAllChannels()) {
    p.f1 = as7341.getChannel(AS7341_CHANNEL_415nm_F1);
    p.f2 = as7341.getChannel(AS7341_CHANNEL_445nm_F2);
    p.f3 = as7341.getChannel(AS7341_CHANNEL_480nm_F3);
    p.f4 = as7341.getChannel(AS7341_CHANNEL_515nm_F4);
    p.f5 = as7341.getChannel(AS7341_CHANNEL_555nm_F5);
    p.f6 = as7341.getChannel(AS7341_CHANNEL_590nm_F6);
    p.f7 = as7341.getChannel(AS7341_CHANNEL_630nm_F7);
    p.f8 = as7341.getChannel(AS7341_CHANNEL_680nm_F8);
    p.clear = as7341.getChannel(AS7341_CHANNEL_CLEAR);
    p.nir = as7341.getChannel(AS7341_CHANNEL_NIR);
  } else {
    if (spec_ok) cnt.i2c_err++;
    const uint16_t ref[10] = {400, 600, 500, 1900, 900, 600, 1150, 750, 6500, 600};
    uint16_t *dst[10] = {&p.f1, &p.f2, &p.f3, &p.f4, &p.f5, &p.f6, &p.f7, &p.f8, &p.clear, &p.nir};
    for (int i = 0; i < 10; i++) *dst[i] = (uint16_t)(ref[i] * (0.95f + random(0, 100) / 1000.0f));
  }
  s->has_temp = true;
  s->temp = temperatureRead();
}

static void publish_sample(const char *lot, int idx) {
  static fl_sqal_sample_t s;
  memset(&s, 0, sizeof s);
  fl_envelope_t e = env(&seq_telemetry);
  char id[32];
  snprintf(id, sizeof id, "S-%lu-%lu", (unsigned long)boot_count, (unsigned long)e.seq);
  s.sample = id, s.lot = lot, s.idx = idx;
  read_sample(&s);
  size_t n = fl_msg_sqal_sample(&e, &s, msg, sizeof msg);
  if (n) publish("telemetry", nullptr, msg, n);
}

static void reply(const char *name, const char *id, bool ok, const char *err) {
  fl_envelope_t e = env(&seq_res);
  size_t n = fl_msg_reply(&e, id, ok, err, nullptr, 0, msg, sizeof msg);
  if (n) publish("cmd_res", name, msg, n);
}

/* ------------------------------------------------------------------------------------------ commands */

static bool text_field(const uint8_t *p, size_t n, const char *key, char *out, size_t cap) {
  fl_cbor_reader_t r;
  fl_cbor_item_t it;
  fl_cbor_reader_init(&r, p, n);
  if (!fl_cbor_map_find(&r, key) || !fl_cbor_read(&r, &it) || it.type != FL_CBOR_TEXT || it.len >= cap) return false;
  memcpy(out, it.ptr, it.len);
  out[it.len] = 0;
  return true;
}

static bool number_field(const uint8_t *p, size_t n, const char *key, double *out) {
  fl_cbor_reader_t r;
  fl_cbor_item_t it;
  fl_cbor_reader_init(&r, p, n);
  return fl_cbor_map_find(&r, key) && fl_cbor_read(&r, &it) && fl_cbor_item_number(&it, out);
}

static void handle_command(const fl_command_t &c) {
  char id[65], lot[16];
  if (!text_field(c.p, c.plen, "id", id, sizeof id)) return; /* no id: nothing to reply to */
  if (strcmp(c.name, "status") == 0) {
    publish_status("online", "requested");
    reply(c.name, id, true, nullptr);
  } else if (strcmp(c.name, "config") == 0) {
    double v;
    if (number_field(c.p, c.plen, "interval_ms", &v) && v >= 100 && v <= 3600000) interval_ms = (uint32_t)v;
    reply(c.name, id, true, nullptr);
    publish_meta();
  } else if (strcmp(c.name, "inspect") == 0) {
    double n = 5;
    if (!text_field(c.p, c.plen, "lot", lot, sizeof lot)) return reply(c.name, id, false, "lot: required");
    number_field(c.p, c.plen, "n", &n);
    for (int i = 0; i < (int)n && i < 100; i++) publish_sample(lot, i);
    reply(c.name, id, true, nullptr);
  } else if (strcmp(c.name, "reboot") == 0) {
    reply(c.name, id, true, nullptr);
    publish_status("offline", "reboot: command");
    uint32_t until = millis() + 500;
    while ((int32_t)(millis() - until) < 0) pump();
    ESP.restart();
  } else {
    reply(c.name, id, false, "unknown command");
  }
}

/* ------------------------------------------------------------------------------------------ receive */

static fl_rx_t rx;

static void on_frame(uint8_t type, const uint8_t *b, size_t n) {
  last_host_frame_at = millis();
  uint32_t ls, sid;
  bool ask;
  fl_command_t c;
  switch (type) {
    case FL_ACK:
      if (!fl_parse_ack(b, n, &ls)) return;
      for (auto &f : inflight)
        if (f.used && f.ls == ls) f.used = false;
      return;
    case FL_HELLO:
      if (!fl_parse_host_hello(b, n, &sid, &ask)) return;
      if (!have_host || sid != host_sid) {
        host_sid = sid;
        have_host = true;
        send_hello();
        for (auto &f : inflight) f.sent_at = 0; /* a new host: send everything unacked again now */
      } else if (ask) {
        send_hello(); /* the host missed our hello */
      }
      if (!link_up) {
        link_up = true;
        publish_status("online", boot_count == 1 ? "boot: power_on" : "boot");
        publish_meta();
      }
      return;
    case FL_COMMAND: {
      if (!fl_parse_command(b, n, &c)) return;
      size_t an = fl_body_ack(c.ls, body, sizeof body);
      send_frame(FL_ACK, body, an);
      static uint32_t seen[32];
      static size_t seen_n = 0;
      for (size_t i = 0; i < seen_n && i < 32; i++)
        if (seen[i] == c.ls) return; /* a retransmission: acked again, not run twice */
      seen[seen_n++ % 32] = c.ls;
      handle_command(c);
      return;
    }
    default:
      return; /* host heartbeats only keep last_host_frame_at fresh */
  }
}

/* ------------------------------------------------------------------------------------------ Arduino */

void setup() {
  Serial.setRxBufferSize(4096);
  Serial.begin(FL_BAUD);
  prefs.begin("esp-fleet", false);
  boot_count = prefs.getUInt("boot", 0) + 1;
  prefs.putUInt("boot", boot_count);
  link_sid = esp_random();
  Serial.printf("I (%lu) app: esp-fleet reference fw %s boot=%lu\n", (unsigned long)millis(), FL_FW_VERSION, (unsigned long)boot_count);

  Wire.begin();
  Wire.setClock(400000);
  Wire.beginTransmission(0x29);
  tof_ok = Wire.endTransmission() == 0 && tof.begin() == 0 && tof.init() == 0 &&
           tof.set_resolution(VL53L8CX_RESOLUTION_8X8) == 0 && tof.start_ranging() == 0;
  spec_ok = as7341.begin(0x39, &Wire);
  if (spec_ok) {
    as7341.setATIME(29);
    as7341.setASTEP(599);
    as7341.setGain(AS7341_GAIN_4X);
  }
  Serial.printf("I (%lu) i2c: VL53L8CH %s, AS7341 %s\n", (unsigned long)millis(), tof_ok ? "ok" : "MISSING (generated)",
                spec_ok ? "ok" : "MISSING (generated)");

  fl_envelope_t e = env(&seq_status);
  fl_status_t s = {"offline", "link lost", false, 0, 0, 0, {0, 0, 0, 0, 0}};
  will_len = fl_msg_status(&e, &s, will, sizeof will);
  fl_rx_init(&rx);
  Serial.write((uint8_t)0); /* delimiter: the text above is console, not part of the first frame */
  send_hello();
  next_sample_at = millis() + interval_ms;
}

void loop() {
  while (Serial.available()) {
    if (!fl_rx_push(&rx, (uint8_t)Serial.read())) continue;
    uint8_t type;
    const uint8_t *b;
    size_t n;
    if (fl_frame_decode(rx.buf, rx.len, &type, &b, &n) == FL_OK) on_frame(type, b, n);
    else bad_frames++;
    rx.len = 0;
  }
  uint32_t now = millis();
  if (link_up && now - last_host_frame_at > 3 * HB_MS) link_up = false; /* bridge gone: queue, keep saying hello */
  if (!link_up && now - last_hello_at >= 1000) send_hello();
  if ((int32_t)(now - next_sample_at) >= 0) {
    next_sample_at = now + interval_ms;
    publish_sample(nullptr, -1);
  }
  if (link_up && now - last_hb_at >= HB_MS) {
    last_hb_at = now;
    size_t n = fl_body_heartbeat(now, cnt.sent, retries, bad_frames, body, sizeof body);
    send_frame(FL_HEARTBEAT, body, n);
  }
  pump();
}
