"""MPEG audio Layer III frame headers: enough to check an MP3 and know its length.

Pure parsing, no decoding. Used for MP3 legs handed over as they are and by the
tests that check what the encoder produced.
"""

import mmap
from dataclasses import dataclass

_BITRATES = {
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {1: (44100, 48000, 32000), 2: (22050, 24000, 16000), 25: (11025, 12000, 8000)}
_VERSIONS = {0b00: 25, 0b10: 2, 0b11: 1}


class NotMp3(ValueError):
    pass


@dataclass(frozen=True)
class FrameHeader:
    version: int  # 1, 2 or 25 (MPEG 2.5)
    bitrate_kbps: int
    sample_rate: int
    channels: int
    length: int
    samples: int


@dataclass(frozen=True)
class Mp3Info:
    sample_rate: int
    channels: int
    bitrates: frozenset
    frames: int
    duration: float

    @property
    def is_cbr(self):
        return len(self.bitrates) == 1


def parse_header(b):
    """The Layer III frame header in the 4 bytes b, or None."""
    if len(b) < 4 or b[0] != 0xFF or (b[1] & 0xE0) != 0xE0:
        return None
    version = _VERSIONS.get((b[1] >> 3) & 0b11)
    layer = (b[1] >> 1) & 0b11
    bitrate_index = b[2] >> 4
    rate_index = (b[2] >> 2) & 0b11
    if version is None or layer != 0b01 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    bitrate = _BITRATES[1 if version == 1 else 2][bitrate_index]
    sample_rate = _SAMPLE_RATES[version][rate_index]
    padding = (b[2] >> 1) & 1
    channels = 1 if (b[3] >> 6) == 0b11 else 2
    samples = 1152 if version == 1 else 576
    length = (samples // 8) * bitrate * 1000 // sample_rate + padding
    return FrameHeader(version, bitrate, sample_rate, channels, length, samples)


def _skip_id3v2(data):
    if data[:3] == b"ID3" and len(data) >= 10:
        size = 0
        for byte in data[6:10]:
            size = (size << 7) | (byte & 0x7F)
        return 10 + size
    return 0


def inspect(path):
    """Mp3Info of the file, or NotMp3 when it is not a complete, consistent MP3."""
    with open(path, "rb") as f:
        try:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:
            raise NotMp3("empty file") from None
        with data:
            return _inspect(data)


def _inspect(data):
    end = len(data)
    if end >= 128 and data[end - 128 : end - 125] == b"TAG":
        end -= 128
    pos = _skip_id3v2(data)
    first = None
    frames = 0
    samples = 0
    bitrates = set()
    while pos + 4 <= end:
        header = parse_header(data[pos : pos + 4])
        if header is None:
            raise NotMp3(f"no MPEG Layer III frame at byte {pos}")
        if first is None:
            first = header
        elif (header.sample_rate, header.channels) != (first.sample_rate, first.channels):
            raise NotMp3("frames disagree on sample rate or channels")
        if pos + header.length > end:
            raise NotMp3("truncated last frame")
        frames += 1
        frame_head = data[pos : pos + min(header.length, 64)]
        if frames > 1 or (b"Xing" not in frame_head and b"Info" not in frame_head):
            samples += header.samples  # a leading Xing/Info frame carries no audio
        bitrates.add(header.bitrate_kbps)
        pos += header.length
    if first is None:
        raise NotMp3("no MPEG audio frames")
    return Mp3Info(first.sample_rate, first.channels, frozenset(bitrates), frames, samples / first.sample_rate)
