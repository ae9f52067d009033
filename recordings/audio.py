"""Audio at ingest: reading WAV (16-bit PCM, G.711 A-law and µ-law), mixing, MP3 encoding.

Everything works on open binary files, block by block, so an hour-long call is never
held in memory whole: one block of ~10 seconds per input is read, converted to int16,
mixed and handed to one encoder thread per output (LAME, recordings/lame.py, runs without
the GIL, so the outputs are encoded in parallel).
"""

import dataclasses
import hashlib
import struct
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from recordings import lame, mp3

SAMPLE_RATES = (8000, 16000)
BLOCK_SECONDS = 10
# Encoder blocks queued per output before the reader waits: bounds memory.
BLOCKS_AHEAD = 2
# At or below this everywhere (about -60 dBFS) a leg is silence only. G.711's idle
# codes decode to 0 or ±8, so an idle telephone channel counts as silence.
SILENCE_PEAK = 32
# LAME's quality 7 (the `lame` command's default is 3): on speech it costs 40% less CPU than
# 3 and gives back the waveform as faithfully (SNR and segmental SNR), see README "Media for
# recognisers" and tests/perf/bench_quality.py.
MP3_QUALITY = 7

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_ALAW = 0x0006
WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_CODECS = {WAVE_FORMAT_PCM: "pcm16", WAVE_FORMAT_ALAW: "alaw", WAVE_FORMAT_MULAW: "ulaw"}
_CODEC_NAMES = {"pcm16": "16-bit PCM", "alaw": "G.711 A-law", "ulaw": "G.711 µ-law"}


class AudioError(ValueError):
    """Input the ingest refuses; the message is meant for whoever sent it."""

    input_index = None  # set by transcode(): which of its inputs was bad


# --- G.711 (ITU-T G.711, decoding to 16-bit linear) -------------------------------------


def alaw_decode_table():
    """The 256 A-law codes as 16-bit linear values (the 13-bit G.711 values times 8)."""
    table = np.empty(256, dtype=np.int16)
    for code in range(256):
        a = code ^ 0x55  # even bits are inverted on the line
        magnitude = ((a & 0x0F) << 4) + 8
        segment = (a & 0x70) >> 4
        if segment >= 1:
            magnitude = (magnitude + 0x100) << (segment - 1)
        table[code] = magnitude if a & 0x80 else -magnitude
    return table


def ulaw_decode_table():
    """The 256 µ-law codes as 16-bit linear values (the 14-bit G.711 values times 4)."""
    bias = 0x84
    table = np.empty(256, dtype=np.int16)
    for code in range(256):
        u = ~code & 0xFF  # all bits are inverted on the line
        magnitude = ((((u & 0x0F) << 3) + bias) << ((u & 0x70) >> 4)) - bias
        table[code] = -magnitude if u & 0x80 else magnitude
    return table


ALAW = alaw_decode_table()
ULAW = ulaw_decode_table()


# --- WAV -----------------------------------------------------------------------------


def sniff(source):
    """"wav", "mp3" or None for the file's first bytes; "empty" for a file with none.
    Leaves the file at its start."""
    source.seek(0)
    head = source.read(12)
    source.seek(0)
    if not head:
        return "empty"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3" or mp3.parse_header(head[:4]) is not None:
        return "mp3"
    return None


@dataclass(frozen=True)
class WavFormat:
    codec: str  # "pcm16", "alaw" or "ulaw"
    channels: int
    sample_rate: int
    frames: int

    @property
    def duration(self):
        return self.frames / self.sample_rate

    @property
    def bytes_per_frame(self):
        return self.channels * (2 if self.codec == "pcm16" else 1)

    def describe(self):
        return f"{_CODEC_NAMES[self.codec]}, {self.sample_rate} Hz, {self.channels} channel(s)"


class WavReader:
    """A WAV file opened for reading in blocks. The header is checked on opening:
    supported codec and rate, and a data chunk the file actually holds."""

    def __init__(self, source):
        self.source = source
        source.seek(0)
        riff = source.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            raise AudioError("Not a WAV file.")
        fmt = None
        while True:
            chunk = source.read(8)
            if len(chunk) < 8:
                if fmt is None:
                    raise AudioError("The WAV file is truncated: it has no fmt chunk.")
                raise AudioError("The WAV file is truncated: it has no data chunk.")
            chunk_id, size = struct.unpack("<4sI", chunk)
            if chunk_id == b"fmt ":
                fmt = self._read_fmt(size)
            elif chunk_id == b"data":
                if fmt is None:
                    raise AudioError("The WAV file has its data chunk before the fmt chunk.")
                break
            else:
                self._skip(size + (size & 1))
        codec, channels, rate, block_align = fmt
        self.data_bytes = size
        self.format = WavFormat(codec, channels, rate, size // block_align if block_align else 0)
        self._check_data(size)

    def _read_fmt(self, size):
        body = self.source.read(size + (size & 1))
        if size < 16 or len(body) < size:
            raise AudioError("The WAV file is truncated: its fmt chunk is incomplete.")
        tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", body[:16])
        if tag == WAVE_FORMAT_EXTENSIBLE and size >= 40:
            tag = struct.unpack("<H", body[24:26])[0]  # the first two bytes of the sub-format GUID
        codec = _CODECS.get(tag)
        if codec is None:
            raise AudioError(
                f"Unsupported WAV encoding (format tag 0x{tag:04x}); use 16-bit PCM, G.711 A-law or µ-law."
            )
        expected_bits = 16 if codec == "pcm16" else 8
        if bits != expected_bits:
            raise AudioError(
                f"Unsupported sample size for {_CODEC_NAMES[codec]}: {bits} bits; expected {expected_bits}."
            )
        if rate not in SAMPLE_RATES:
            raise AudioError(f"Unsupported sample rate: {rate} Hz; use 8000 or 16000 Hz.")
        if channels < 1:
            raise AudioError("The WAV file declares no channels.")
        if block_align != channels * bits // 8:
            raise AudioError("The WAV header is inconsistent (block alignment).")
        return codec, channels, rate, block_align

    def _skip(self, count):
        # Chunks other than fmt and data (LIST, fact, ...) are of no interest.
        while count > 0:
            got = len(self.source.read(min(count, 1 << 20)))
            if got == 0:
                raise AudioError("The WAV file is truncated: it has no data chunk.")
            count -= got

    def _check_data(self, size):
        if size == 0:
            raise AudioError("The WAV file has no audio samples.")
        if size % self.format.bytes_per_frame:
            raise AudioError("The WAV file is truncated: its data ends in the middle of a sample.")
        here = self.source.tell()
        end = self.source.seek(0, 2)
        self.source.seek(here)
        if end - here < size:
            raise AudioError(
                f"The WAV file is truncated: its data chunk declares {size} bytes but only {end - here} follow."
            )
        self.data_start = here

    def blocks(self, frames_per_block):
        """int16 arrays of shape (frames, channels), frames_per_block at a time."""
        fmt = self.format
        self.source.seek(self.data_start)
        remaining = self.data_bytes
        step = frames_per_block * fmt.bytes_per_frame
        while remaining:
            raw = self.source.read(min(step, remaining))
            if not raw:
                raise AudioError("The WAV file is truncated: its data ended early.")
            if len(raw) % fmt.bytes_per_frame:
                raise AudioError("The WAV file is truncated: its data ends in the middle of a sample.")
            remaining -= len(raw)
            if fmt.codec == "pcm16":
                samples = np.frombuffer(raw, dtype="<i2").astype(np.int16, copy=False)
            else:
                samples = (ALAW if fmt.codec == "alaw" else ULAW)[np.frombuffer(raw, dtype=np.uint8)]
            yield samples.reshape(-1, fmt.channels)


# --- mixing and encoding -----------------------------------------------------------------


def mix(*legs):
    """The saturating sum of int16 legs: too loud clips at the int16 limits, never wraps
    around. A shorter leg counts as silence after its end."""
    if len(legs) == 1:
        return np.ascontiguousarray(legs[0], dtype=np.int16)
    # In place from a copy of the longest leg, no temporaries: 0.04 s per hour of a call
    # where summing into zeros and clipping into a new array took 0.16 s.
    longest, *others = sorted(legs, key=len, reverse=True)
    total = longest.astype(np.int32)
    for leg in others:
        total[: len(leg)] += leg
    np.clip(total, -32768, 32767, out=total)
    return total.astype(np.int16)


@dataclass(frozen=True)
class Encoded:
    """What an encoded output turned out to be."""

    size: int
    sha256: str
    frames: int
    sample_rate: int
    peak: int
    lossless_size: int = None  # the FLAC copy, when one was written
    lossless_sha256: str = None

    @property
    def duration(self):
        # From the sample count: the MP3's frames also hold LAME's encoder delay and
        # padding (which its info tag tells decoders to drop).
        return self.frames / self.sample_rate

    @property
    def audio_detected(self):
        return self.peak > SILENCE_PEAK


@dataclass(frozen=True)
class Output:
    """One file to make: an MP3 (a file opened "w+b": its first frame, the info tag, is
    written last), optionally its FLAC copy, from per output channel a recipe
    [(input index, channel), ...] mixed with saturation."""

    mp3: object
    channels: list
    flac: object = None


def _digest(f):
    """(size, sha256) of what was written to an open file."""
    f.flush()
    f.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := f.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


class Mp3Writer:
    """One CBR MP3 at the input's sample rate (mono, or L/R stereo), written to an open
    file as it is encoded, beginning with the LAME info tag."""

    def __init__(self, out, *, channels, sample_rate, kbps, quality):
        self.out = out
        self.sample_rate = sample_rate
        self.quality = quality
        self.encoder = lame.Encoder(channels=channels, sample_rate=sample_rate, kbps=kbps, quality=quality)
        self.own_tag = not mp3.lame_writes_tag(sample_rate=sample_rate, kbps=kbps, channels=channels)
        if self.own_tag:
            # LAME writes no tag when its frame is too small; ours takes a larger frame, kept free here.
            out.write(bytes(mp3.info_tag_frame_length(sample_rate=sample_rate, kbps=kbps, channels=channels)))
        self.start = out.tell()
        self.frames = 0
        self.peak = 0

    def write(self, channels):
        if len(channels[0]):
            self.peak = max(self.peak, *(max(int(c.max()), -int(c.min())) for c in channels))
            self.frames += len(channels[0])
            self.out.write(self.encoder.encode(*channels))

    def close(self):
        if self.frames == 0:
            raise AudioError("No audio samples to encode.")
        self.out.write(self.encoder.flush())
        if self.own_tag:
            tag = self._own_tag()
        else:
            tag = self.encoder.info_tag()
            if not tag:
                raise lame.LameError("LAME wrote no info tag")
        self.out.seek(0)
        self.out.write(tag)  # over the frame kept free for it (by LAME or by us), same size
        self.encoder.close()
        size, sha256 = _digest(self.out)
        return Encoded(size, sha256, self.frames, self.sample_rate, self.peak)

    def _own_tag(self):
        end = self.out.tell()
        self.out.seek(self.start)
        audio_header = self.out.read(4)
        facts = self.encoder.facts()
        return mp3.info_tag_frame(
            audio_header=audio_header,
            audio_frames=facts["frames"],
            audio_bytes=end - self.start,
            delay=facts["delay"],
            padding=facts["padding"],
            quality=self.quality,
            vbr_q=facts["vbr_q"],
            lowpass=facts["lowpass"],
            ath_type=facts["ath_type"],
            encoder=lame.VERSION,
        )


class FlacWriter:
    """The lossless copy: the same int16 samples as FLAC (libsndfile through soundfile)."""

    def __init__(self, out, *, channels, sample_rate):
        import soundfile  # only where FLAC is made or read: libsndfile costs the plain ingest memory

        self.out = out
        self.file = soundfile.SoundFile(
            out, mode="w", samplerate=sample_rate, channels=channels, format="FLAC", subtype="PCM_16"
        )

    def write(self, channels):
        self.file.write(np.stack(channels, axis=1) if len(channels) > 1 else channels[0])

    def close(self):
        self.file.close()
        return _digest(self.out)


class OutputWriter:
    """An Output's MP3 and, when asked for, its FLAC copy."""

    def __init__(self, output, *, sample_rate, kbps, quality):
        count = len(output.channels)
        self.mp3 = Mp3Writer(output.mp3, channels=count, sample_rate=sample_rate, kbps=kbps, quality=quality)
        self.flac = FlacWriter(output.flac, channels=count, sample_rate=sample_rate) if output.flac else None

    def write(self, channels):
        self.mp3.write(channels)
        if self.flac is not None:
            self.flac.write(channels)

    def close(self):
        encoded = self.mp3.close()
        if self.flac is None:
            return encoded
        size, sha256 = self.flac.close()
        return dataclasses.replace(encoded, lossless_size=size, lossless_sha256=sha256)


def _next_block(index, stream):
    try:
        return next(stream, None)
    except AudioError as exc:
        exc.input_index = index
        raise


def transcode(*, inputs, outputs, kbps, quality=MP3_QUALITY, block_seconds=BLOCK_SECONDS):
    """Encode outputs made of the inputs' channels, reading every input once, in blocks.

    inputs: WavReaders of one sample rate. outputs: {name: Output}. Returns {name: Encoded}.
    """
    rates = {reader.format.sample_rate for reader in inputs}
    if len(rates) != 1:
        raise AudioError("The files have different sample rates.")
    rate = rates.pop()
    frames_per_block = rate * block_seconds
    writers = {
        name: OutputWriter(output, sample_rate=rate, kbps=kbps * len(output.channels), quality=quality)
        for name, output in outputs.items()
    }
    # One thread per output keeps each encoder's blocks in order and the outputs in parallel.
    pools = {name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mp3-{name}") for name in outputs}
    pending = deque()
    try:
        streams = [reader.blocks(frames_per_block) for reader in inputs]
        while True:
            blocks = [_next_block(index, stream) for index, stream in enumerate(streams)]
            if all(block is None for block in blocks):
                break
            submitted = []
            for name, output in outputs.items():
                channels = _channels(blocks, output.channels)
                if channels:
                    submitted.append(pools[name].submit(writers[name].write, channels))
            pending.append(submitted)
            if len(pending) > BLOCKS_AHEAD:
                for future in pending.popleft():
                    future.result()
        while pending:
            for future in pending.popleft():
                future.result()
        return {name: writer.close() for name, writer in writers.items()}
    finally:
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)


def _channels(blocks, recipes):
    """An output's channels for this block, each the saturating mix of its recipe's channels;
    None when its inputs have ended. In a 2-channel output a party whose input has ended is
    silence while the other still speaks."""
    channels = [mix(*parts) if parts else None for parts in (
        [blocks[i][:, channel] for i, channel in recipe if blocks[i] is not None] for recipe in recipes
    )]
    if all(c is None for c in channels):
        return None
    length = max(len(c) for c in channels if c is not None)
    padded = []
    for channel in channels:
        channel = np.zeros(0, np.int16) if channel is None else channel
        if len(channel) < length:
            channel = np.concatenate([channel, np.zeros(length - len(channel), np.int16)])
        padded.append(np.ascontiguousarray(channel))
    return padded


# --- WAV made from the lossless copy while it is sent ------------------------------------

WAV_HEADER_SIZE = 44
SEND_FRAMES = 64 * 1024  # frames decoded per chunk sent: bounds memory whatever the call's length


def wav_header(*, channels, sample_rate, frames):
    """The canonical 44-byte header of a 16-bit PCM WAV."""
    data = frames * channels * 2
    return (
        b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, WAVE_FORMAT_PCM, channels, sample_rate, sample_rate * channels * 2, channels * 2, 16)
        + b"data" + struct.pack("<I", data)
    )


class WavFromFlac:
    """The 16-bit PCM WAV of a stored FLAC copy (an open, seekable binary file): its exact
    size from the FLAC header's sample count, and any byte range of it decoded from the
    needed sample on (FLAC seek), so a range costs what it sends."""

    def __init__(self, f):
        import soundfile  # see FlacWriter

        self.file = f
        try:
            self.flac = soundfile.SoundFile(f)
        except BaseException:
            f.close()
            raise
        self.channels = self.flac.channels
        self.frames = self.flac.frames
        self.header = wav_header(channels=self.channels, sample_rate=self.flac.samplerate, frames=self.frames)
        self.size = WAV_HEADER_SIZE + self.frames * self.channels * 2

    def chunks(self, start, end):
        """The WAV's bytes start..end (inclusive), a chunk at a time."""
        if start < WAV_HEADER_SIZE:
            yield self.header[start : end + 1]
            start = WAV_HEADER_SIZE
        remaining = end + 1 - start
        if remaining <= 0:
            return
        bytes_per_frame = self.channels * 2
        frame, skip = divmod(start - WAV_HEADER_SIZE, bytes_per_frame)
        self.flac.seek(frame)
        while remaining > 0:
            samples = self.flac.read(SEND_FRAMES, dtype="int16")
            if not len(samples):
                raise AudioError("The lossless copy holds fewer samples than its header says.")
            data = samples.astype("<i2", copy=False).tobytes()[skip : skip + remaining]
            skip = 0
            remaining -= len(data)
            yield data

    def close(self):
        self.flac.close()
        self.file.close()
