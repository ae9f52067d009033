"""MPEG audio Layer III frame headers and the LAME info tag: enough to check an MP3,
know its exact length, and write the tag when LAME cannot.

Pure functions, no decoding. Used for MP3 legs handed over as they are, by the encoder
(recordings/audio.py) and by the tests that check what it produced.

The info tag is the "Mp3 Info Tag rev 1" layout LAME writes: a silent first frame
holding `Info` (CBR; `Xing` for VBR), frame and byte counts, a seek table, then LAME's
extension with the encoder delay and padding that decoders drop to give back exactly
the encoded samples.
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
    duration: float  # of the decoded samples: the encoder delay and padding taken off when tagged
    delay: int = None  # from the LAME info tag; None when the file has none
    padding: int = None

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
    length = frame_length(version, bitrate, sample_rate, padding)
    return FrameHeader(version, bitrate, sample_rate, channels, length, samples)


def frame_length(version, bitrate, sample_rate, padding=0):
    samples = 1152 if version == 1 else 576
    return (samples // 8) * bitrate * 1000 // sample_rate + padding


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
    tag = None
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
        if frames > 1 or info_tag_offset(data[pos : pos + header.length], header) is None:
            samples += header.samples
            bitrates.add(header.bitrate_kbps)
        else:
            tag = data[pos : pos + header.length]  # a leading Xing/Info frame carries no audio
        pos += header.length
    if first is None:
        raise NotMp3("no MPEG audio frames")
    delay, padding = lame_delay_and_padding(tag, first) if tag is not None else (None, None)
    decoded = samples - (delay or 0) - (padding or 0) if delay is not None else samples
    return Mp3Info(
        first.sample_rate, first.channels, frozenset(bitrates), frames, decoded / first.sample_rate, delay, padding
    )


# --- the LAME info tag --------------------------------------------------------------------

XING_FLAGS = 0x0F  # frames, bytes, seek table and quality present
XING_SIZE = 120  # "Info", flags, frames, bytes, 100-entry seek table, quality
LAME_EXTENSION_SIZE = 36


def mpeg_version(sample_rate):
    return next(version for version, rates in _SAMPLE_RATES.items() if sample_rate in rates)


def lame_writes_tag(*, sample_rate, kbps, channels):
    """Whether LAME's own tag fits in a frame of the stream (it writes none otherwise)."""
    version = mpeg_version(sample_rate)
    needed = 4 + side_info_size(version, channels) + XING_SIZE + LAME_EXTENSION_SIZE
    return frame_length(version, kbps, sample_rate) >= needed


def side_info_size(version, channels):
    if version == 1:
        return 17 if channels == 1 else 32
    return 9 if channels == 1 else 17


def info_tag_offset(frame, header):
    """Where `Info`/`Xing` starts in a first frame, or None when it is an audio frame."""
    offset = 4 + side_info_size(header.version, header.channels)
    return offset if bytes(frame[offset : offset + 4]) in (b"Info", b"Xing") else None


def lame_delay_and_padding(frame, header):
    """(encoder delay, padding) from a LAME extension, or (None, None)."""
    offset = info_tag_offset(frame, header)
    flags = int.from_bytes(frame[offset + 4 : offset + 8], "big")
    extension = offset + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
    if len(frame) < extension + 24 or bytes(frame[extension : extension + 4]) not in (b"LAME", b"Lavf", b"Lavc"):
        return None, None
    a, b, c = frame[extension + 21 : extension + 24]
    return (a << 4) | (b >> 4), ((b & 0x0F) << 8) | c


def crc16(data, crc=0):
    """CRC-16/ARC (polynomial 0x8005, reflected), the checksum of the info tag."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _tag_bitrate_index(header):
    table = _BITRATES[1 if header.version == 1 else 2]
    needed = 4 + side_info_size(header.version, header.channels) + XING_SIZE + LAME_EXTENSION_SIZE
    return next(
        i for i in range(1, 15)
        if table[i] >= header.bitrate_kbps and frame_length(header.version, table[i], header.sample_rate) >= needed
    )


def info_tag_frame_length(*, sample_rate, kbps, channels):
    """The length info_tag_frame() will have for such a stream."""
    version = mpeg_version(sample_rate)
    header = FrameHeader(version, kbps, sample_rate, channels, 0, 0)
    return frame_length(version, _BITRATES[1 if version == 1 else 2][_tag_bitrate_index(header)], sample_rate)


def info_tag_frame(
    *, audio_header, audio_frames, audio_bytes, delay, padding, quality, vbr_q, lowpass, ath_type, encoder
):
    """A LAME info tag frame for a CBR stream whose frames carry `audio_header`.

    For what LAME itself cannot tag (its frame would be too small for the tag: 16 kHz mono
    at 32 kbps); the frame takes the smallest bit rate whose frame holds the tag, which
    decoders accept (the tag frame is not audio). The music CRC is left 0: nobody checks
    it and computing it would cost a pass over the whole file in Python."""
    header = parse_header(audio_header)
    offset = 4 + side_info_size(header.version, header.channels)
    table = _BITRATES[1 if header.version == 1 else 2]
    index = _tag_bitrate_index(header)
    length = frame_length(header.version, table[index], header.sample_rate)
    total = length + audio_bytes
    frame = bytearray(length)
    # no CRC, the tag frame's bit rate, no padding bit; mode and flags as the audio frames
    frame[0:4] = bytes(
        (0xFF, audio_header[1] | 0x01, (index << 4) | (audio_header[2] & 0x0C), audio_header[3] & 0xCF)
    )
    toc = bytes(
        min(255, 256 * (length + (audio_frames * i // 100) * header.length) // total) for i in range(100)
    )
    xing = b"Info" + XING_FLAGS.to_bytes(4, "big") + audio_frames.to_bytes(4, "big") + total.to_bytes(4, "big")
    xing += toc + (100 - 10 * vbr_q - quality).to_bytes(4, "big")
    name = f"LAME{encoder}".encode()[:9].ljust(9, b" ")
    extension = (
        name
        + bytes((0x01, min(255, round(lowpass / 100))))  # tag revision 0, CBR; lowpass in 100 Hz
        + bytes(8)  # no replay gain
        + bytes(((1 << 4) | (ath_type & 0x0F), min(255, header.bitrate_kbps)))
        + bytes((delay >> 4, ((delay & 0x0F) << 4) | (padding >> 8), padding & 0xFF))
        + bytes(((0 if header.channels == 1 else 1) << 2, 0))  # misc: stereo mode; MP3 gain
        + min(header.bitrate_kbps, 0x7FF).to_bytes(2, "big")  # preset: the CBR bit rate, as LAME writes it
        + total.to_bytes(4, "big")
        + bytes(2)  # music CRC, see above
    )
    frame[offset : offset + len(xing) + len(extension)] = xing + extension
    end = offset + len(xing) + len(extension)
    frame[end : end + 2] = crc16(frame[:end]).to_bytes(2, "big")
    return bytes(frame)
