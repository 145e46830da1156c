"""Audio file I/O that streams in blocks (memory does not grow with file length).

Reads anything libsndfile reads (WAV, FLAC, OGG/Vorbis, MP3 with libsndfile >= 1.1, AIFF, ...), at any
sample rate, mono or stereo; more than two channels is refused. When a caller asks for another sample
rate, blocks are resampled on the fly with soxr (streaming, "VHQ"). Writes WAV 16-bit (TPDF dithered),
WAV 24-bit, FLAC 24-bit, or 32-bit float WAV (internal segment files) through a temporary file in the
destination folder that is renamed into place only when writing finished cleanly, so a failed or
interrupted render never leaves a partial output file.

Documented handling of awkward input: digital silence and clipped input are readable here (the match
reports them: silence is refused by :func:`engine.match_files`, clipping is flagged in the report);
NaN/Inf samples raise :class:`AudioInputError` naming the position; files shorter than 1 s are refused;
long files (hours) stream like short ones.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.errors import AudioInputError

MIN_DURATION_S = 1.0
MAX_CHANNELS = 2
DEFAULT_BLOCK_FRAMES = 65536
OUTPUT_FORMATS = ("wav16", "wav24", "flac")
#: formats AudioWriter accepts; ``float32`` is for intermediate (segment) files.
WRITER_FORMATS = (*OUTPUT_FORMATS, "float32")
_SF_FORMAT = {
    "wav16": ("WAV", "PCM_16"),
    "wav24": ("WAV", "PCM_24"),
    "flac": ("FLAC", "PCM_24"),
    "float32": ("WAV", "FLOAT"),
}
#: the extension each output format gets when a caller needs one.
FORMAT_EXTENSION = {"wav16": "wav", "wav24": "wav", "flac": "flac", "float32": "wav"}
_RESAMPLE_MARGIN_S = 0.5  # resampler warm-up before a seek point (filter transient dies out well before)
#: integer PCM read as integers and scaled here: libsndfile's own float conversion of 16-bit PCM is
#: ~3x slower than reading int16 and one numpy multiply (0.10 vs 0.03 s per 4-minute stereo file), and
#: gives the same values (sample / 2^15, or / 2^31 for 24-bit read left-aligned into int32).
_INT_READ = {"PCM_16": ("int16", 1.0 / 32768.0), "PCM_24": ("int32", 1.0 / 2147483648.0)}


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`probe` found out about an audio file."""

    path: str
    sample_rate_hz: int
    channels: int
    frames: int
    duration_s: float
    format: str
    subtype: str

    def to_dict(self) -> dict:
        return asdict(self)


def _open(path: str | os.PathLike, *, refuse_cut_mp3: bool = False) -> sf.SoundFile:
    p = Path(path)
    if not p.exists():
        raise AudioInputError("file not found", where=str(path))
    if p.is_dir():
        raise AudioInputError("is a folder, not an audio file", where=str(path))
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise AudioInputError(f"cannot read file ({exc.strerror})", where=str(path)) from None
    if size == 0:
        raise AudioInputError("file is empty (0 bytes)", where=str(path))
    if refuse_cut_mp3:
        _refuse_cut_mp3(p, size)
    try:
        return sf.SoundFile(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        detail = str(exc).split(":")[-1].strip() or "unknown error"
        raise AudioInputError(
            f"not a readable audio file or unsupported format ({detail}); "
            "use WAV, FLAC, AIFF, OGG (Vorbis or Opus) or MP3", where=str(path)) from None
    except OSError as exc:
        raise AudioInputError(f"cannot read file ({exc.strerror or exc})", where=str(path)) from None


# libsndfile's log of a WAV/AIFF/W64 whose audio chunk runs past the end of the file:
# "data : 3528000 (should be 1175970)" (SSND in AIFF)
_CHUNK_SHORT_RE = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# sizes a recorder writes while it streams and never fixes up: the length is unknown, not cut short
_UNFINISHED_SIZE = 0x7FFF0000
_TRUNCATION_TOLERANCE_S = 0.1  # a missing pad byte or last frame of a sloppy writer is no cut file


def _truncated_share(extra_info: str) -> float | None:
    """Share of the header's audio chunk the file really holds, when it holds less (else None)."""
    m = _CHUNK_SHORT_RE.search(extra_info or "")
    if not m:
        return None
    declared, present = int(m.group(1)), int(m.group(2))
    if declared == 0 or declared >= _UNFINISHED_SIZE or present >= declared:
        return None
    return present / declared


def _cut_short(path: str | os.PathLike, promised_s: float, holds: str) -> AudioInputError:
    """The error for a file holding less audio than its header promises (``holds``: "4.86 s", "about
    4.9 s")."""
    return AudioInputError(f"is truncated: its header promises {promised_s:.2f} s of audio, the file holds "
                           f"{holds} (an interrupted copy or download?)", where=str(path))


_OGG_PAGE_MAX_BYTES = 27 + 255 + 255 * 255


def _ogg_last_page_is_cut(path: str | os.PathLike) -> bool:
    """Whether the Ogg file ends inside a page. A copy or download cut short almost always does, and
    libsndfile then reads it as a shorter, complete-looking file (its length comes from the last whole
    page). A last page that is whole but lacks the end-of-stream flag is accepted: a recorder stopped
    between two pages leaves that (as a streamed WAV's unfinished size is accepted); so is a tag some
    taggers append after the last page."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - _OGG_PAGE_MAX_BYTES))
        tail = fh.read()
    at = tail.rfind(b"OggS")
    while at >= 0:
        # a page: "OggS", version 0, flags, granule (8), serial (4), sequence (4), CRC (4), segment
        # count, segment table, then the segments
        if at + 27 <= len(tail) and tail[at + 4] != 0:
            at = tail.rfind(b"OggS", 0, at)  # the pattern occurred inside packet data
            continue
        if at + 27 > len(tail):
            return True
        n_segments = tail[at + 26]
        table = tail[at + 27: at + 27 + n_segments]
        end = at + 27 + n_segments + sum(table)
        if len(table) < n_segments or end > len(tail):
            return True
        after = tail[end: end + 4]
        return bool(after) and b"OggS".startswith(after)  # cut inside the next page's capture pattern
    return False


@dataclass(frozen=True)
class _Mp3InfoTag:
    """What the Xing/Info or VBRI header in an MP3's first frame declares."""

    frames: int | None  # MPEG frames in the stream
    stream_bytes: int | None  # bytes of the MPEG stream (tags excluded)
    seconds_per_frame: float


_MPEG_RATES_HZ = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_info_tag(path: str | os.PathLike) -> _Mp3InfoTag | None:
    """The Xing/Info (LAME) or VBRI header of a Layer III file's first frame, or None (not MP3, or an
    MP3 without one: then libsndfile's length is an estimate from the file size)."""
    with open(path, "rb") as fh:
        head = fh.read(10)
        skip = 0
        if len(head) == 10 and head[:3] == b"ID3":  # ID3v2 tag: synchsafe size, optional footer
            skip = 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7
                         | (head[9] & 0x7F)) + (10 if head[5] & 0x10 else 0)
        fh.seek(skip)
        frame = fh.read(4096)
    # the first frame starts the file (after the ID3v2 tag and any zero padding): a frame sync found
    # further in could be PCM data, or a WAV header followed by its LIST/INFO chunk
    sync = len(frame) - len(frame.lstrip(b"\x00"))
    if sync >= len(frame) - 3 or frame[sync] != 0xFF or frame[sync + 1] & 0xE0 != 0xE0:
        return None
    version, layer = (frame[sync + 1] >> 3) & 3, (frame[sync + 1] >> 1) & 3
    rate_index = (frame[sync + 2] >> 2) & 3
    if layer != 1 or version not in _MPEG_RATES_HZ or rate_index == 3:  # Layer III only (ADTS AAC: layer 0)
        return None
    seconds_per_frame = (1152 if version == 3 else 576) / _MPEG_RATES_HZ[version][rate_index]
    first = frame[sync: sync + 200]

    def u32(at: int) -> int | None:
        return int.from_bytes(first[at:at + 4], "big") if len(first) >= at + 4 else None

    for tag in (b"Xing", b"Info"):
        at = first.find(tag, 4, 64)
        if at >= 0 and len(first) >= at + 8:
            flags, pos = u32(at + 4) or 0, at + 8
            frames = u32(pos) if flags & 0x01 else None
            pos += 4 if flags & 0x01 else 0
            stream_bytes = u32(pos) if flags & 0x02 else None
            return _Mp3InfoTag(frames, stream_bytes, seconds_per_frame)
    if first[36:40] == b"VBRI":  # version, delay, quality (2 bytes each), then bytes and frames
        return _Mp3InfoTag(u32(50), u32(46), seconds_per_frame)
    return None


def _refuse_cut_mp3(path: str | os.PathLike, size: int) -> None:
    """AudioInputError when an MP3's Xing/Info/VBRI header counts more stream bytes than the whole
    file holds (1 % slack): cut short, and refused before libsndfile opens it (its decoder would
    print warnings of its own on stderr)."""
    tag = _mp3_info_tag(path)
    if tag is None or not tag.stream_bytes or size >= 0.99 * tag.stream_bytes:
        return
    if tag.frames:
        declared_s = tag.frames * tag.seconds_per_frame
        raise _cut_short(path, declared_s, f"about {declared_s * size / tag.stream_bytes:.2f} s")
    raise AudioInputError(f"is truncated: its header promises {tag.stream_bytes} bytes of audio, the file "
                          f"holds {size} (an interrupted copy or download?)", where=str(path))


def probe(path: str | os.PathLike) -> AudioInfo:
    """Open ``path`` and describe it; refuse what the engine cannot use (AudioInputError, where=path),
    a file cut short of the audio its header promises among them: a WAV/AIFF whose data chunk is
    short, an Ogg stream that breaks off inside a page (an MP3 whose Xing/Info header counts more
    frames than it holds is refused before it is opened when its header also counts the bytes, else
    when read, by :func:`iter_blocks`)."""
    with _open(path, refuse_cut_mp3=True) as f:
        info = AudioInfo(path=str(path), sample_rate_hz=int(f.samplerate), channels=int(f.channels),
                         frames=int(f.frames), duration_s=f.frames / float(f.samplerate),
                         format=str(f.format), subtype=str(f.subtype))
        share = _truncated_share(f.extra_info) if info.format in ("WAV", "WAVEX", "AIFF", "W64", "RF64") \
            else None
    if share is not None and info.duration_s / share - info.duration_s > _TRUNCATION_TOLERANCE_S:
        raise _cut_short(path, info.duration_s / share, f"{info.duration_s:.2f} s")
    if info.format == "OGG" and _ogg_last_page_is_cut(path):
        raise AudioInputError(
            f"is truncated: the Ogg stream breaks off inside a page after {info.duration_s:.2f} s "
            "(an interrupted copy or download?)", where=str(path))
    if info.channels > MAX_CHANNELS:
        raise AudioInputError(
            f"has {info.channels} channels; only mono and stereo are supported "
            "(downmix it to stereo first)", where=str(path))
    if info.frames <= 0:
        raise AudioInputError("contains no audio frames (zero length or truncated header)", where=str(path))
    if info.sample_rate_hz < 8000:
        raise AudioInputError(f"sample rate {info.sample_rate_hz} Hz is below the 8000 Hz minimum",
                              where=str(path))
    if info.duration_s < MIN_DURATION_S:
        raise AudioInputError(f"is {info.duration_s:.3f} s long; at least {MIN_DURATION_S:.0f} s of audio "
                              "is needed", where=str(path))
    return info


def _check_finite(block: np.ndarray, path: str, first_frame: int, sample_rate_hz: int) -> None:
    # float64 accumulation of float32 data cannot overflow, so a non-finite sum means a NaN/Inf sample.
    if math.isfinite(float(np.add.reduce(block, axis=None, dtype=np.float64))):
        return
    bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
    pos_s = (first_frame + int(bad[0])) / float(sample_rate_hz)
    raise AudioInputError(f"contains NaN/Inf samples (first at {pos_s:.3f} s)", where=path)


def iter_blocks(path: str | os.PathLike, block_frames: int = DEFAULT_BLOCK_FRAMES, *,
                sample_rate_hz: int | None = None, start_frame: int = 0,
                stop_frame: int | None = None) -> Iterator[np.ndarray]:
    """Yield consecutive float32 ``(frames, channels)`` blocks of ``block_frames`` (the last may be
    shorter). ``start_frame``/``stop_frame`` count frames at the output rate (``sample_rate_hz``, or the
    file's own rate). Resamples with soxr (streaming, VHQ) when ``sample_rate_hz`` differs from the
    file's rate; a seek into a resampled stream starts the resampler early on a grid point shared by
    both rates, so the samples equal those of a read from the start. Raises AudioInputError on
    NaN/Inf samples or undecodable data; a WAV/AIFF shorter than its header says is refused by
    :func:`probe`, and a compressed file whose length was an estimate (MP3, OGG) ends where its audio
    ends."""
    info = probe(path)
    src_rate = info.sample_rate_hz
    out_rate = int(sample_rate_hz or src_rate)
    if out_rate < 8000 or out_rate > 768000:
        raise AudioInputError(f"output sample rate {out_rate} Hz is out of range 8000..768000",
                              where=str(path))
    block_frames = int(block_frames)
    if block_frames <= 0:
        raise ValueError("block_frames must be positive")
    if out_rate == src_rate:
        yield from _iter_native(info, block_frames, int(start_frame), stop_frame)
    else:
        yield from _iter_resampled(info, block_frames, out_rate, int(start_frame), stop_frame)


def _iter_native(info: AudioInfo, block_frames: int, start: int, stop: int | None) -> Iterator[np.ndarray]:
    stop = info.frames if stop is None else min(int(stop), info.frames)
    if start >= stop:
        return
    pos = start
    int_dtype, scale = _INT_READ.get(info.subtype, (None, 1.0))
    with _open(info.path) as f:
        if start:
            f.seek(start)
        while pos < stop:
            n = min(block_frames, stop - pos)
            try:
                block = f.read(n, dtype=int_dtype or "float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                detail = str(exc).split(":")[-1].strip() or "decoder error"
                raise AudioInputError(f"file is corrupt or truncated at {pos / info.sample_rate_hz:.3f} s "
                                      f"({detail})", where=info.path) from None
            if block.shape[0] == 0:
                # shorter than the header says: an MP3 whose length was estimated from its size ends
                # where its audio ends; one whose Xing/Info header counted the frames was cut short
                if pos == start:
                    raise AudioInputError(
                        f"file is truncated: no audio at {pos / info.sample_rate_hz:.3f} s although the "
                        f"header says {info.duration_s:.3f} s", where=info.path)
                if (stop - pos) / info.sample_rate_hz > _TRUNCATION_TOLERANCE_S and \
                        (info.format != "MP3" or getattr(_mp3_info_tag(info.path), "frames", None)):
                    raise _cut_short(info.path, info.duration_s, f"{pos / info.sample_rate_hz:.2f} s")
                return
            if int_dtype:
                block = np.multiply(block, np.float32(scale), dtype=np.float32)
            else:
                _check_finite(block, info.path, pos, info.sample_rate_hz)
            pos += block.shape[0]
            yield block


def _iter_resampled(info: AudioInfo, block_frames: int, out_rate: int, start: int,
                    stop: int | None) -> Iterator[np.ndarray]:
    import soxr

    src_rate = info.sample_rate_hz
    total_out = math.floor(info.frames * out_rate / src_rate)
    stop = total_out if stop is None else min(int(stop), total_out)
    if start >= stop:
        return
    g = math.gcd(src_rate, out_rate)
    in_step, out_step = src_rate // g, out_rate // g
    warm = max(0, start - int(_RESAMPLE_MARGIN_S * out_rate))
    k = warm // out_step
    src_start, out_pos = k * in_step, k * out_step
    skip = start - out_pos
    rs = soxr.ResampleStream(src_rate, out_rate, info.channels, dtype="float32", quality="VHQ")
    pending: list[np.ndarray] = []
    pending_frames = 0
    emitted = start
    for block in _iter_native(info, block_frames, src_start, None):
        last = False
        y = rs.resample_chunk(block, last=last)
        if y.ndim == 1:
            y = y[:, None]
        if skip:
            drop = min(skip, y.shape[0])
            y, skip = y[drop:], skip - drop
        if y.shape[0]:
            pending.append(y)
            pending_frames += y.shape[0]
        while pending_frames >= block_frames and emitted < stop:
            out, pending, pending_frames = _take(pending, pending_frames, min(block_frames, stop - emitted))
            emitted += out.shape[0]
            yield out
        if emitted >= stop:
            return
    y = rs.resample_chunk(np.zeros((0, info.channels), np.float32), last=True)
    if y.ndim == 1:
        y = y[:, None]
    if skip:
        y = y[min(skip, y.shape[0]):]
    if y.shape[0]:
        pending.append(y)
        pending_frames += y.shape[0]
    while pending_frames > 0 and emitted < stop:
        out, pending, pending_frames = _take(pending, pending_frames, min(block_frames, stop - emitted))
        emitted += out.shape[0]
        yield out


def _take(pending: list[np.ndarray], pending_frames: int, n: int) -> tuple[np.ndarray, list[np.ndarray], int]:
    n = min(n, pending_frames)
    buf = pending[0] if len(pending) == 1 else np.concatenate(pending, axis=0)
    out = np.ascontiguousarray(buf[:n], dtype=np.float32)
    rest = buf[n:]
    return out, ([rest] if rest.shape[0] else []), pending_frames - n


def read_audio(path: str | os.PathLike, *, sample_rate_hz: int | None = None, start_s: float = 0.0,
               stop_s: float | None = None) -> tuple[np.ndarray, int]:
    """Read a whole file (or ``start_s..stop_s``) into a float32 ``(frames, channels)`` array; returns
    ``(audio, sample_rate_hz)``. Use :func:`iter_blocks` for long files."""
    info = probe(path)
    rate = int(sample_rate_hz or info.sample_rate_hz)
    start = round(start_s * rate)
    stop = None if stop_s is None else round(stop_s * rate)
    blocks = list(iter_blocks(path, 1 << 20, sample_rate_hz=rate, start_frame=start, stop_frame=stop))
    if not blocks:
        return np.zeros((0, info.channels), np.float32), rate
    return (blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=0)), rate


def _quantize(block: np.ndarray, fmt: str, rng: np.random.Generator) -> np.ndarray:
    if fmt == "float32":
        return np.ascontiguousarray(block, dtype=np.float32)
    if fmt == "wav16":
        scale, lo, hi = 32768.0, -32768, 32767
        # TPDF dither: the difference of two uniform variables, +-1 LSB peak. Both draws of a sample
        # are consecutive in the generator's stream, so the dither of a frame depends on its place in
        # the file, not on how the file is cut into blocks (a segmented job's merge writes other
        # blocks than a whole-file render)
        x = np.multiply(block, np.float32(scale), dtype=np.float32)
        u = rng.random((*block.shape, 2), dtype=np.float32)
        x += u[..., 0] - u[..., 1]
        np.rint(x, out=x)
        np.clip(x, lo, hi, out=x)
        return x.astype(np.int16)
    # 24-bit: libsndfile takes the top 24 bits of int32 data.
    x = np.multiply(block, np.float32(8388608.0), dtype=np.float32)
    np.rint(x, out=x)
    np.clip(x, -8388608, 8388607, out=x)
    q = x.astype(np.int32)
    np.left_shift(q, 8, out=q)
    return q


def _new_temp_file(folder: Path, prefix: str, suffix: str) -> str:
    """Create an empty file with a fresh random name in ``folder`` and return its path. Unlike
    mkstemp's 0600, it gets 0666 less the umask, as any file the user writes (the output file
    takes its mode when it replaces the old one)."""
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return str(path)
    raise FileExistsError(f"no free temporary name in {folder}")


class AudioWriter:
    """Write ``(frames, channels)`` float blocks to ``path`` as ``fmt`` (``wav16`` dithered, ``wav24``,
    ``flac`` 24-bit, ``float32``), atomically: the data goes to a temporary file in the same folder that
    replaces ``path`` only when the ``with`` block exits without an exception."""

    def __init__(self, path: str | os.PathLike, sample_rate_hz: int, channels: int, fmt: str = "wav24",
                 *, dither_seed: int = 0) -> None:
        if fmt not in WRITER_FORMATS:
            from engine.errors import ParamsError
            raise ParamsError(f"unknown output format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}",
                              where="output_format")
        if channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        self.path = Path(path)
        self.sample_rate_hz = int(sample_rate_hz)
        self.channels = int(channels)
        self.fmt = fmt
        self.frames_written = 0
        self._seed = dither_seed
        self._rng = np.random.default_rng(dither_seed)
        self._tmp: str | None = None
        self._file: sf.SoundFile | None = None

    def __enter__(self) -> AudioWriter:
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise AudioInputError("output folder does not exist", where=str(folder))
        self._tmp = _new_temp_file(folder, f".{self.path.name}.", ".part")
        container, subtype = _SF_FORMAT[self.fmt]
        try:
            self._file = sf.SoundFile(self._tmp, "w", samplerate=self.sample_rate_hz, channels=self.channels,
                                      format=container, subtype=subtype)
        except Exception:
            os.unlink(self._tmp)
            raise
        return self

    def restart(self) -> None:
        """Discard everything written so far (the temporary file starts over)."""
        if self._file is None or self._tmp is None:
            raise RuntimeError("AudioWriter.restart outside its with-block")
        self._file.close()
        container, subtype = _SF_FORMAT[self.fmt]
        self._file = sf.SoundFile(self._tmp, "w", samplerate=self.sample_rate_hz, channels=self.channels,
                                  format=container, subtype=subtype)
        self.frames_written = 0
        self._rng = np.random.default_rng(self._seed)

    def write(self, block: np.ndarray) -> None:
        """Append a float block (values in -1..1; anything beyond is clipped in integer formats)."""
        if self._file is None:
            raise RuntimeError("AudioWriter.write outside its with-block")
        if block.ndim == 1:
            block = block[:, None]
        if block.shape[1] != self.channels:
            raise ValueError(f"block has {block.shape[1]} channels, writer expects {self.channels}")
        if block.shape[0] == 0:
            return
        self._file.write(_quantize(block, self.fmt, self._rng))
        self.frames_written += block.shape[0]

    def __exit__(self, exc_type, exc, tb) -> None:
        f, tmp = self._file, self._tmp
        self._file = self._tmp = None
        try:
            if f is not None:
                f.close()
        finally:
            if tmp is not None:
                if exc_type is None:
                    os.replace(tmp, self.path)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate_hz: int, fmt: str = "wav24") -> None:
    """Write a whole array atomically (see :class:`AudioWriter`)."""
    audio = audio[:, None] if audio.ndim == 1 else audio
    with AudioWriter(path, sample_rate_hz, audio.shape[1], fmt) as w:
        for i in range(0, audio.shape[0], 1 << 18):
            w.write(audio[i:i + (1 << 18)])


def input_levels(path: str | os.PathLike) -> dict[str, float]:
    """``{dc_offset_dbfs, sample_peak_dbfs}`` of a file, as the features name them (floor -150): the
    larger channel mean (|mean(L)| or |mean(R)|) and the largest sample magnitude; one streaming
    pass, memory flat."""
    from engine.true_peak import SamplePeakMeter

    sums: np.ndarray | None = None
    peak = SamplePeakMeter()
    frames = 0
    for block in iter_blocks(path):
        b = np.sum(block, axis=0, dtype=np.float64)
        sums = b if sums is None else sums + b
        peak.feed(block)
        frames += block.shape[0]
    dc = float(np.max(np.abs(sums / frames))) if sums is not None and frames else 0.0
    return {"dc_offset_dbfs": max(-150.0, 20.0 * math.log10(dc)) if dc > 0 else -150.0,
            "sample_peak_dbfs": max(-150.0, peak.sample_peak_dbfs())}
