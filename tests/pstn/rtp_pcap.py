"""Media for sipp's `play_pcap_audio`: a tone as 20 ms G.711 A-law RTP packets in a pcap
(Ethernet, IPv4, UDP), the only packet size Janus's AudioBridge takes (sipp's own pcaps are
30 ms). sipp sends the RTP payloads from its media port, whatever the addresses here say."""

from __future__ import annotations

import math
import struct
from pathlib import Path

from tests.automation.tones import alaw_encode

SAMPLES = 160  # 20 ms at 8 kHz


def write_tone(path: Path, frequency: float, seconds: float) -> Path:
    packets = []
    for seq in range(int(seconds * 50)):
        samples = [
            int(8000 * math.sin(2 * math.pi * frequency * (seq * SAMPLES + i) / 8000))
            for i in range(SAMPLES)
        ]
        rtp = struct.pack("!BBHII", 0x80, 8, seq + 1, seq * SAMPLES, 0x5B001) + alaw_encode(samples)
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
