#!/usr/bin/env python3
"""Golden CBOR vectors, written by an encoder independent of cbor-x (this file, from RFC 8949 §3 and
RFC 8746 by hand) so the TypeScript decoder and the firmware's C code are checked against bytes no one of
them produced. Run: python3 schemas/vectors/make_vectors.py > schemas/vectors/messages.json
Floats are written as float64 unless they are exactly representable as float32 *and* the vector says so.
"""
import json
import struct
import sys


class F32(float):
    """A float to be written as CBOR float32 (major 7, 0xfa)."""


class Tagged:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value


def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | ai]) + struct.pack(fmt, n)
    raise ValueError(n)


def enc(v):
    if v is None:
        return b"\xf6"
    if v is True:
        return b"\xf5"
    if v is False:
        return b"\xf4"
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, F32):
        return b"\xfa" + struct.pack(">f", v)
    if isinstance(v, float):
        return b"\xfb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode("utf-8")
        return head(3, len(b)) + b
    if isinstance(v, (bytes, bytearray)):
        return head(2, len(v)) + bytes(v)
    if isinstance(v, Tagged):
        return head(6, v.tag) + enc(v.value)
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(enc(x) for x in v)
    if isinstance(v, dict):
        return head(5, len(v)) + b"".join(enc(k) + enc(x) for k, x in v.items())
    raise TypeError(type(v))


def u16le(values):  # RFC 8746 tag 69: uint16, little endian, typed array
    return Tagged(69, b"".join(struct.pack("<H", x) for x in values))


def u16(values):  # a uint16 field: the smallest RFC 8746 form, tag 64 when every value fits in a byte
    return u8(values) if all(x < 256 for x in values) else u16le(values)


def u8(values):  # RFC 8746 tag 64: uint8 typed array
    return Tagged(64, bytes(values))


def plain(v):
    """The JSON the decoder must produce (typed arrays as number arrays)."""
    if isinstance(v, Tagged):
        if v.tag == 69:
            return [struct.unpack_from("<H", v.value, i)[0] for i in range(0, len(v.value), 2)]
        if v.tag == 64:
            return list(v.value)
        return {"tag": v.tag, "value": plain(v.value)}
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, float):
        return float(v)
    return v


ENV = {"v": 1, "dev": "ESP32_LL_01", "boot": 7, "seq": 42, "ts": 1764547200123}
dist = [100 - (20 + (r * 8 + c) % 60) for r in range(8) for c in range(8)]
sqal = dict(ENV, sample="S-7-42", lot="LL2512001", idx=2,
            tof={"dist": u16(dist), "status": u8([5] * 63 + [255]), "refl": u8([40 + i % 20 for i in range(64)]),
                 "amp": u16([1000 + 10 * i for i in range(64)]), "amb": 3, "h": 100},
            spec={"f1": 400, "f2": 600, "f3": 500, "f4": 1900, "f5": 900, "f6": 600, "f7": 1150, "f8": 750,
                  "clear": 6500, "nir": 600, "gain": 3, "atime": 29, "astep": 599},
            temp=F32(24.5))
sqal_plain_arrays = dict(sqal, tof=dict(sqal["tof"], dist=dist, status=[5] * 64))
# An encoder that always sends a uint16 field as tag 69 (e.g. one written before the narrowing rule).
sqal_wide_dist = dict(sqal, tof=dict(sqal["tof"], dist=u16le(dist)))
fridge_env = dict(ENV, dev="FRIDGE_LL_01")
fridge = dict(fridge_env, t=4.75, t_evap=-8.5, p_lo=2.5, p_hi=12.0, i_comp=15.25, v_sup=381.0, vib=0.5, rh=64.0,
              flow=101.5, door=False, comp=True, defrost=False, sim={"fault": None})
fridge_fault = dict(fridge, t=-999.0, i_comp=14.0, sim={"fault": "capteur_defectueux"})
feeding_env = dict(ENV, dev="GAVAGE_LL_01")
feeding = dict(feeding_env, lot="LL2512001", site="LL", feeder_id=1, feeder="Jean Martin", genetics="mulard", day=3,
               days=12, moment="evening", dose_th=F32(287.5), dose=291.25, weight=5012.5, alive=49, initial=50,
               mortality=2.0, pen_t=21.5, pen_rh=63.0, ready=False)
status = dict(ENV, state="online", reason="power_on", uptime=30, heap=182344, rssi=-61,
              cnt={"sent": 12, "buffered": 0, "dropped": 0, "reconnects": 1, "i2c_err": 0})
will = dict(ENV, seq=43, state="offline")
meta = dict(ENV, kind="sqal", site="LL", fw="1.4.2", hw="ESP32-D0WD-V3", mac="24:0A:C4:12:34:56",
            sensors=[{"name": "VL53L8CH", "addr": 0x29, "ok": True}, {"name": "AS7341", "addr": 0x39, "ok": True}],
            cfg={"interval_ms": 1000}, emulated=True)
event = dict(fridge_env, type="fault_onset", sev="critical", fault="panne_electrique", msg="supply voltage 150 V",
             data={"v_sup": 150.0})
cmd = {"id": "c-1", "lot": "LL2512001", "n": 5, "profile": "premium"}
reply = dict(ENV, id="c-1", ok=True, data={"samples": 5})

VECTORS = [
    ("sqal sample (typed arrays)", "LL/sqal/ESP32_LL_01/telemetry", sqal, None),
    ("sqal sample (plain integer arrays)", "LL/sqal/ESP32_LL_01/telemetry", sqal_plain_arrays, None),
    ("sqal sample (uint16 distances as tag 69)", "LL/sqal/ESP32_LL_01/telemetry", sqal_wide_dist, None),
    ("fridge reading", "LL/fridge/FRIDGE_LL_01/telemetry", fridge, None),
    ("fridge reading, faulty probe", "LL/fridge/FRIDGE_LL_01/telemetry", fridge_fault, None),
    ("feeding record", "LL/gavage/GAVAGE_LL_01/telemetry", feeding, None),
    ("status birth", "LL/sqal/ESP32_LL_01/status", status, None),
    ("status will", "LL/sqal/ESP32_LL_01/status", will, None),
    ("meta", "LL/sqal/ESP32_LL_01/meta", meta, None),
    ("event", "LL/fridge/FRIDGE_LL_01/event", event, None),
    ("command inspect", "LL/sqal/ESP32_LL_01/cmd/inspect", cmd, None),
    ("command reply", "LL/sqal/ESP32_LL_01/cmd/inspect/res", reply, None),
    # invalid ones: the error must name the problem
    ("bad: tof.dist has 63 values", "LL/sqal/ESP32_LL_01/telemetry",
     dict(sqal, tof=dict(sqal["tof"], dist=u16(dist[:63]))), "tof.dist"),
    ("bad: missing seq", "LL/fridge/FRIDGE_LL_01/telemetry", {k: v for k, v in fridge.items() if k != "seq"}, "seq"),
    ("bad: unknown fault id", "LL/fridge/FRIDGE_LL_01/telemetry", dict(fridge, sim={"fault": "gremlins"}), "sim.fault"),
    ("bad: spectral count over 16 bits", "LL/sqal/ESP32_LL_01/telemetry",
     dict(sqal, spec=dict(sqal["spec"], clear=70000)), "spec.clear"),
]

out = []
for name, topic, value, error in VECTORS:
    item = {"name": name, "topic": topic, "hex": enc(value).hex()}
    if error:
        item["error"] = error
    else:
        item["json"] = plain(value)
    out.append(item)
# Bytes that are not valid CBOR at all.
out.append({"name": "bad: truncated CBOR", "topic": "LL/fridge/FRIDGE_LL_01/telemetry", "hex": enc(fridge).hex()[:-6], "error": "cbor"})
out.append({"name": "bad: not CBOR", "topic": "LL/fridge/FRIDGE_LL_01/telemetry", "hex": b"hello world".hex(), "error": "cbor"})
json.dump(out, sys.stdout, indent=1)
sys.stdout.write("\n")
