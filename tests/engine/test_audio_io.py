"""Audio I/O: formats, channel handling, resampling, atomic writes and the bad-input list."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio_io import AudioWriter, iter_blocks, probe, read_audio, write_audio
from engine.errors import AudioInputError

FS = 44100


def _tone(seconds: float = 2.0, fs: int = FS, channels: int = 2, f_hz: float = 1000.0) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    x = 0.5 * np.sin(2 * np.pi * f_hz * t)
    return np.stack([x * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.mark.parametrize("fmt,tol", [("wav16", 2.0 / 32768), ("wav24", 1.0 / 2 ** 23),
                                     ("flac", 1.0 / 2 ** 23), ("float32", 0.0)])
def test_write_read_round_trip_each_format(tmp_path: Path, fmt: str, tol: float) -> None:
    x = _tone()
    out = tmp_path / ("o.flac" if fmt == "flac" else "o.wav")
    write_audio(out, x, FS, fmt)
    y, rate = read_audio(out)
    assert rate == FS and y.shape == x.shape and y.dtype == np.float32
    assert np.max(np.abs(y - x)) <= tol + 1e-9
    info = probe(out)
    assert info.subtype == {"wav16": "PCM_16", "wav24": "PCM_24", "flac": "PCM_24", "float32": "FLOAT"}[fmt]


def test_wav16_is_tpdf_dithered(tmp_path: Path) -> None:
    # a -100 dBFS tone (below 1 LSB) survives 16-bit only thanks to dither; the error is noise-like
    t = np.arange(FS * 2) / FS
    x = (10 ** (-100 / 20) * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)[:, None]
    write_audio(tmp_path / "d.wav", x, FS, "wav16")
    y, _ = read_audio(tmp_path / "d.wav")
    err = y[:, 0] - x[:, 0]
    lsb = 1 / 32768
    assert 0.3 * lsb < np.std(err) < 1.0 * lsb  # TPDF: error RMS ~ 0.5..0.6 LSB, never stuck at zero
    corr = np.dot(y[:, 0], x[:, 0]) / np.dot(x[:, 0], x[:, 0])
    assert 0.8 < corr < 1.2  # the sub-LSB tone is still there on average


def test_wav16_dither_does_not_depend_on_how_the_audio_is_cut_into_blocks(tmp_path: Path) -> None:
    # a segmented service job writes its wav16 result in other blocks than tonematch match (the
    # limiter's latency shortens the CLI's first block): the dither paired its two uniform draws per
    # block, so the two files differed by up to 2 LSB (-84 dBFS) where the audio was identical
    x = _tone(1.0)
    with AudioWriter(tmp_path / "one.wav", FS, 2, "wav16") as w:
        w.write(x)
    with AudioWriter(tmp_path / "cut.wav", FS, 2, "wav16") as w:
        for a, b in ((0, 7), (7, 4096), (4096, 30000), (30000, x.shape[0])):
            w.write(x[a:b])
    one, _ = sf.read(tmp_path / "one.wav", dtype="int16")
    cut, _ = sf.read(tmp_path / "cut.wav", dtype="int16")
    assert np.array_equal(one, cut)


def test_mono_stays_mono(tmp_path: Path) -> None:
    x = _tone(channels=1)
    sf.write(tmp_path / "m.wav", x, FS)
    assert probe(tmp_path / "m.wav").channels == 1
    blocks = list(iter_blocks(tmp_path / "m.wav", 4096))
    assert all(b.ndim == 2 and b.shape[1] == 1 for b in blocks)
    assert sum(b.shape[0] for b in blocks) == x.shape[0]


def test_more_than_two_channels_is_refused(tmp_path: Path) -> None:
    sf.write(tmp_path / "6ch.wav", np.zeros((FS * 2, 6), np.float32), FS)
    with pytest.raises(AudioInputError, match="6 channels") as e:
        probe(tmp_path / "6ch.wav")
    assert e.value.where == str(tmp_path / "6ch.wav")


def test_missing_empty_nonaudio_and_short_files(tmp_path: Path) -> None:
    with pytest.raises(AudioInputError, match="not found"):
        probe(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioInputError, match="empty"):
        probe(tmp_path / "empty.wav")
    (tmp_path / "text.wav").write_text("this is not audio\n" * 100)
    with pytest.raises(AudioInputError, match="not a readable audio file"):
        probe(tmp_path / "text.wav")
    sf.write(tmp_path / "short.wav", np.zeros((FS // 2, 2), np.float32), FS)
    with pytest.raises(AudioInputError, match="at least 1 s"):
        probe(tmp_path / "short.wav")
    with pytest.raises(AudioInputError, match="folder"):
        probe(tmp_path)


def test_truncated_file_is_refused_or_read_to_its_real_end(tmp_path: Path) -> None:
    x = _tone(3.0)
    sf.write(tmp_path / "full.flac", x, FS, subtype="PCM_24")
    raw = (tmp_path / "full.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(raw[: len(raw) // 2])
    # documented handling: either a clear AudioInputError, or the audio that is really there
    try:
        y, _ = read_audio(tmp_path / "cut.flac")
    except AudioInputError as exc:
        assert exc.where == str(tmp_path / "cut.flac")
    else:
        assert 0 < y.shape[0] <= x.shape[0]
        n = y.shape[0]
        assert np.max(np.abs(y[: n // 2] - x[: n // 2])) < 1e-5
    wav = tmp_path / "full.wav"
    sf.write(wav, x, FS, subtype="PCM_16")
    raw = wav.read_bytes()
    (tmp_path / "cut.wav").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AudioInputError) as e:  # WAV: the header's length says what is missing
        read_audio(tmp_path / "cut.wav")
    assert e.value.where == str(tmp_path / "cut.wav") and "truncated" in str(e.value)


def test_nan_samples_name_the_position(tmp_path: Path) -> None:
    x = _tone(3.0)
    x[int(2.5 * FS), 1] = np.nan
    sf.write(tmp_path / "nan.wav", x, FS, subtype="FLOAT")
    with pytest.raises(AudioInputError, match=r"NaN/Inf samples \(first at 2\.500 s\)") as e:
        read_audio(tmp_path / "nan.wav")
    assert e.value.where == str(tmp_path / "nan.wav")


def test_resampling_keeps_pitch_and_length(tmp_path: Path) -> None:
    x = _tone(2.0, fs=48000, f_hz=997.0)
    sf.write(tmp_path / "48k.wav", x, 48000, subtype="FLOAT")
    y, rate = read_audio(tmp_path / "48k.wav", sample_rate_hz=44100)
    assert rate == 44100 and abs(y.shape[0] - 2 * 44100) <= 1
    spec = np.abs(np.fft.rfft(y[:, 0] * np.hanning(y.shape[0])))
    assert abs(np.argmax(spec) * 44100 / y.shape[0] - 997.0) < 1.0
    t = np.arange(y.shape[0]) / 44100
    ref = 0.5 * np.sin(2 * np.pi * 997.0 * t)
    mid = slice(2000, -2000)
    assert np.max(np.abs(y[mid, 0] - ref[mid])) < 1e-3  # VHQ resampling is transparent


def test_resampled_seek_equals_slice_of_full_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal((48000 * 4, 2))).astype(np.float32)
    sf.write(tmp_path / "n.wav", x, 48000, subtype="FLOAT")
    full = np.concatenate(list(iter_blocks(tmp_path / "n.wav", 10007, sample_rate_hz=44100)))
    part = np.concatenate(list(iter_blocks(tmp_path / "n.wav", 4096, sample_rate_hz=44100,
                                           start_frame=100003, stop_frame=150000)))
    assert part.shape[0] == 150000 - 100003
    assert np.max(np.abs(part - full[100003:150000])) < 1e-5


def test_writer_is_atomic_on_error(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    with pytest.raises(RuntimeError), AudioWriter(out, FS, 2, "wav24") as w:
        w.write(_tone(1.0))
        raise RuntimeError("boom")
    assert not out.exists()
    assert os.listdir(tmp_path) == []  # no temporary file left behind either


def test_writer_replaces_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    out.write_bytes(b"previous result")
    with AudioWriter(out, FS, 2, "wav24") as w:
        w.write(_tone(1.0))
        assert out.read_bytes() == b"previous result"  # untouched until the rename
    assert probe(out).frames == FS


def test_unreadable_file_names_every_input_format_accepted(tmp_path: Path) -> None:
    # the README's input list: a user told "use WAV, FLAC, OGG or MP3" would not know AIFF and Opus work
    (tmp_path / "text.wav").write_text("this is not audio\n" * 100)
    with pytest.raises(AudioInputError) as err:
        probe(tmp_path / "text.wav")
    for name in ("WAV", "FLAC", "AIFF", "Vorbis", "Opus", "MP3"):
        assert name in str(err.value), name


@pytest.mark.parametrize("fmt", ["OGG", "MP3"])
def test_compressed_formats_read_when_libsndfile_can(tmp_path: Path, fmt: str) -> None:
    if fmt not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} has no {fmt}")
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, _tone(2.0), FS, format=fmt)
    y, rate = read_audio(path)
    assert rate == FS and y.shape[1] == 2 and y.shape[0] >= 2 * FS - 2048
    assert 0.2 < float(np.abs(y).max()) < 0.7


@pytest.mark.parametrize(("fmt", "subtype", "ext"), [("OGG", "VORBIS", "ogg"), ("OGG", "OPUS", "opus"),
                                                  ("MP3", "MPEG_LAYER_III", "mp3")])
def test_a_compressed_file_cut_short_is_refused_not_matched_as_a_shorter_song(
        tmp_path: Path, fmt: str, subtype: str, ext: str) -> None:
    """libsndfile reads an Ogg file cut in half as a complete file of half the length, and an MP3 as
    its Xing header's length with the rest missing; an interrupted upload must not be matched as if
    it were the song."""
    if subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write {fmt}/{subtype}")
    rate = 48000 if subtype == "OPUS" else FS
    whole = tmp_path / f"whole.{ext}"
    sf.write(whole, _tone(6.0, fs=rate), rate, format=fmt, subtype=subtype)
    assert sum(b.shape[0] for b in iter_blocks(whole)) == 6 * rate  # the complete file reads whole
    data = whole.read_bytes()
    tagged = tmp_path / f"tagged.{ext}"  # an ID3v1 tag some taggers append to any file
    tagged.write_bytes(data + b"TAG" + bytes(125))
    assert probe(tagged).frames == 6 * rate
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(AudioInputError, match="is truncated") as e:
        for _ in iter_blocks(cut):
            pass
    assert e.value.where == str(cut) and "interrupted copy or download" in str(e.value)
    if fmt == "OGG":  # a recorder stopped between two pages: whole pages, no end-of-stream flag, read
        stopped = tmp_path / f"stopped.{ext}"
        stopped.write_bytes(data[: data.rindex(b"OggS")])
        assert 0 < probe(stopped).frames < 6 * rate
    if fmt == "MP3":  # its Xing header counts the stream's bytes: refused before any decoding
        with pytest.raises(AudioInputError, match=r"promises 6\.\d\d s of audio, the file holds about 4"):
            probe(cut)


def test_silence_and_clipping_are_readable(tmp_path: Path) -> None:
    sf.write(tmp_path / "z.wav", np.zeros((FS * 2, 2), np.float32), FS)
    y, _ = read_audio(tmp_path / "z.wav")
    assert not y.any()
    x = np.clip(_tone() * 4, -1, 1)
    sf.write(tmp_path / "c.wav", x, FS, subtype="PCM_16")
    y, _ = read_audio(tmp_path / "c.wav")
    assert float(np.abs(y).max()) >= 0.999


@pytest.mark.parametrize(("container", "subtype"), [("WAV", "PCM_16"), ("WAV", "PCM_24"), ("FLAC", "PCM_16"),
                                                    ("FLAC", "PCM_24"), ("WAV", "PCM_U8")])
def test_integer_pcm_reads_libsndfiles_samples(tmp_path: Path, container: str, subtype: str) -> None:
    # 16/24-bit PCM is read as integers and scaled in numpy (faster); the float32 samples, full-scale
    # negative included, must be exactly libsndfile's own conversion, block edges and seeks too.
    rng = np.random.default_rng(7)
    x = np.clip(rng.normal(0, 0.4, (60_000, 2)), -1.0, 1.0)
    x[:4] = [[-1.0, 1.0], [1.0, -1.0], [0.0, -0.5], [1e-7, -1e-7]]
    path = tmp_path / f"x.{container.lower()}"
    sf.write(path, x, 44100, format=container, subtype=subtype)
    want, _ = sf.read(path, dtype="float32", always_2d=True)
    got = np.concatenate(list(iter_blocks(path, 4096)))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    part = np.concatenate(list(iter_blocks(path, 1000, start_frame=12_345, stop_frame=50_000)))
    np.testing.assert_array_equal(part, want[12_345:50_000])


def test_dc_offset_and_peak_of_a_file_match_the_features(tmp_path: Path) -> None:
    from engine.audio_io import input_levels
    from engine.features import analyze_features

    rng = np.random.default_rng(4)
    x = 0.1 * rng.standard_normal((44100 * 3, 2)) + np.array([0.02, -0.05])
    sf.write(tmp_path / "dc.wav", x, 44100, subtype="FLOAT")
    levels = input_levels(tmp_path / "dc.wav")
    measured = levels["dc_offset_dbfs"]
    doc = analyze_features(tmp_path / "dc.wav")
    assert measured == pytest.approx(20 * np.log10(np.max(np.abs(x.mean(axis=0)))), abs=0.01)
    assert measured == pytest.approx(doc["dc_offset_dbfs"], abs=0.01)
    assert levels["sample_peak_dbfs"] == pytest.approx(doc["sample_peak_dbfs"], abs=0.001)
    sf.write(tmp_path / "zero.wav", np.zeros((88200, 1)), 44100)
    assert input_levels(tmp_path / "zero.wav") == {"dc_offset_dbfs": -150.0, "sample_peak_dbfs": -150.0}


def test_an_output_file_gets_the_mode_any_file_of_the_user_gets(tmp_path: Path) -> None:
    """Written through a temporary file, the output must still be readable by the group and others
    under umask 022 (mkstemp's 0600 made results unreadable to a web server or a colleague)."""
    old = os.umask(0o022)
    try:
        write_audio(tmp_path / "out.wav", np.zeros((4410, 2), np.float32), 44100, "wav16")
    finally:
        os.umask(old)
    assert (tmp_path / "out.wav").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def _wav_bytes(tmp_path: Path, seconds: float = 6.0) -> bytes:
    p = tmp_path / "full.wav"
    sf.write(p, np.full((int(44100 * seconds), 2), 0.1, np.float32), 44100, subtype="PCM_16")
    return p.read_bytes()


def test_a_wav_cut_short_of_its_header_is_refused_naming_both_lengths(tmp_path: Path) -> None:
    """An interrupted copy keeps the header of the whole file: matching the third that arrived
    without a word would be a silent wrong answer."""
    data = _wav_bytes(tmp_path)
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 3])
    with pytest.raises(AudioInputError) as e:
        probe(tmp_path / "cut.wav")
    assert e.value.where == str(tmp_path / "cut.wav")
    assert "truncated" in str(e.value) and "6.00 s" in str(e.value) and "2.00 s" in str(e.value)


def test_a_wav_short_by_a_few_bytes_or_with_an_unfinished_size_is_read(tmp_path: Path) -> None:
    data = _wav_bytes(tmp_path)
    (tmp_path / "short.wav").write_bytes(data[:-3])  # a sloppy writer's missing last frame
    assert abs(probe(tmp_path / "short.wav").duration_s - 6.0) < 0.001
    # a recorder that streamed and never wrote the sizes: 0xFFFFFFFF means "unknown", not "cut"
    at = data.index(b"data") + 4
    unfinished = bytearray(data)
    unfinished[4:8] = unfinished[at:at + 4] = (0xFFFFFFFF).to_bytes(4, "little")
    (tmp_path / "streamed.wav").write_bytes(bytes(unfinished))
    assert sum(b.shape[0] for b in iter_blocks(tmp_path / "streamed.wav")) == 6 * 44100
