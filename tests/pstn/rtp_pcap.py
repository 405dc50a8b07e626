"""Media for sipp's `play_pcap_audio`: a tone as 20 ms G.711 A-law RTP packets in a pcap
(Ethernet, IPv4, UDP), the only packet size Janus's AudioBridge takes (sipp's own pcaps are
30 ms), or keys as RFC 2833 events. sipp sends the RTP payloads from its media port, whatever
the addresses here say."""

from __future__ import annotations

import math
import struct
from pathlib import Path

from tests.automation.tones import alaw_encode

SAMPLES = 160  # 20 ms at 8 kHz


SILENCE = b"\xd5" * SAMPLES  # A-law silence
TELEPHONE_EVENT = 101  # the payload type RFC 2833 events use (the offer says so)
EVENT_PACKETS = 8  # 160 ms a key; the last three carry the end bit


def write_tone(path: Path, frequency: float, seconds: float) -> Path:
    packets = []
    for seq in range(int(seconds * 50)):
        samples = [
            int(8000 * math.sin(2 * math.pi * frequency * (seq * SAMPLES + i) / 8000))
            for i in range(SAMPLES)
        ]
        packets.append(_rtp(0x80, 8, seq, seq * SAMPLES, alaw_encode(samples)))
    return _write_pcap(path, packets)


def write_keys(
    path: Path, keys: str, *, lead_seconds: float = 3.0, payload_type: int = TELEPHONE_EVENT
) -> Path:
    """Silence for `lead_seconds`, then each key ("0"-"9") as an RFC 2833 event (`payload_type`,
    101 unless given: the same timestamp, a growing duration, the end bit on the last three)
    with 200 ms of silence after it."""
    packets: list[bytes] = []
    timestamp = 0

    def silence(count: int) -> None:
        nonlocal timestamp
        for _ in range(count):
            packets.append(_rtp(0x80, 8, len(packets), timestamp, SILENCE))
            timestamp += SAMPLES

    silence(int(lead_seconds * 50))
    for key in keys:
        for n in range(EVENT_PACKETS):
            end = n >= EVENT_PACKETS - 3
            duration = SAMPLES * min(n + 1, EVENT_PACKETS - 2)
            payload = struct.pack("!BBH", int(key), (0x80 if end else 0) | 10, duration)
            marker = 0x80 if n == 0 else 0
            packets.append(_rtp(0x80, marker | payload_type, len(packets), timestamp, payload))
        timestamp += SAMPLES * EVENT_PACKETS
        silence(10)
    return _write_pcap(path, packets)


def _rtp(first: int, second: int, seq: int, timestamp: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", first, second, seq + 1, timestamp, 0x5B001) + payload


def _write_pcap(path: Path, rtp_packets: list[bytes]) -> Path:
    """One packet each 20 ms (sipp sends the RTP as it is, from its media port)."""
    packets = []
    for seq, rtp in enumerate(rtp_packets):
        udp = struct.pack("!HHHH", 10000, 20000, 8 + len(rtp), 0) + rtp
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), seq, 0, 64, 17, 0, b"\n\0\0\1", b"\n\0\0\2"
        )
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        frame = bytes(12) + b"\x08\x00" + ip + udp
        at = (seq + 1) * SAMPLES  # in 1/8000 s
        header = struct.pack("<IIII", at // 8000, at % 8000 * 125, len(frame), len(frame))
        packets.append(header + frame)
    # pcap: magic, version 2.4, no zone, no accuracy, snap length, Ethernet
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + b"".join(packets))
    return path


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF
