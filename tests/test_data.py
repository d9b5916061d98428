import pickle

import numpy as np
import pytest
import torch
from scipy.fft import dct
from scipy.io import wavfile

from hamqcore.study import data
from hamqcore.study.models import ds_cnn, resnet18


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HAMQCORE_CACHE", str(tmp_path / "cache"))


def test_mnist5k():
    d = data.mnist5k()
    assert d.train.x.shape == (4000, 1, 32, 32) and d.test.x.shape == (1000, 1, 32, 32)
    assert d.train.x.dtype == np.float32 and d.train.y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(d.train.y), [400] * 10)
    np.testing.assert_array_equal(np.bincount(d.test.y), [100] * 10)
    assert abs(float(d.train.x.mean())) < 1e-4 and abs(float(d.train.x.std()) - 1) < 1e-3
    again = data.mnist5k()
    np.testing.assert_array_equal(again.train.x, d.train.x)
    # no image is in both splits
    tr = {r.tobytes() for r in d.train.x.reshape(4000, -1)}
    assert not any(r.tobytes() in tr for r in d.test.x.reshape(1000, -1))


def test_digits():
    d = data.digits()
    assert d.train.x.shape[1:] == (1, 8, 8) and len(d.train) + len(d.test) == 1797
    assert set(np.unique(d.test.y)) == set(range(10))


def test_spoken_keywords_small(tmp_path):
    d = data.spoken_keywords(n_speakers=6, takes=1, seed=3, split=(0.2, 0.2))
    assert d.classes == data.KWS_CLASSES and d.num_classes == 12
    assert d.input_shape == (1, 49, 10)
    n = len(d.train) + len(d.val) + len(d.test)
    assert n == 6 * 12
    for s in (d.train, d.val, d.test):
        np.testing.assert_array_equal(np.bincount(s.y, minlength=12), [len(s) // 12] * 12)  # balanced
    spk = [set(s.groups.tolist()) for s in (d.train, d.val, d.test)]
    assert not (spk[0] & spk[1]) and not (spk[0] & spk[2]) and not (spk[1] & spk[2])  # speaker-disjoint
    assert np.isfinite(d.train.x).all() and d.info["synthetic"]
    cached = list((tmp_path / "cache").glob(f"spoken_keywords-v{data.SPOKEN_KEYWORDS_VERSION}-*.npz"))
    assert len(cached) == 1
    again = data.spoken_keywords(n_speakers=6, takes=1, seed=3, split=(0.2, 0.2))  # from the cache
    np.testing.assert_array_equal(again.train.x, d.train.x)
    fresh = data.spoken_keywords(n_speakers=6, takes=1, seed=3, split=(0.2, 0.2), cache=False)
    np.testing.assert_array_equal(fresh.test.x, d.test.x)  # bit-reproducible from the seed
    other = data.spoken_keywords(n_speakers=6, takes=1, seed=4, split=(0.2, 0.2), cache=False)
    assert not np.array_equal(other.train.x, d.train.x)


def _cache_file(tmp_path):
    (path,) = (tmp_path / "cache").glob(f"spoken_keywords-v{data.SPOKEN_KEYWORDS_VERSION}-*.npz")
    return path


@pytest.mark.parametrize("damage", ["truncate", "garbage", "nan", "label", "missing_key"])
def test_spoken_keywords_cache_damage_is_detected_and_repaired(tmp_path, damage):
    from hamqcore.study.data import synth

    kw = dict(n_speakers=3, takes=1, seed=5, split=(0.34, 0.34))
    d = data.spoken_keywords(**kw)
    path = _cache_file(tmp_path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:300])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 1000)
    else:   # well-formed npz files whose content is wrong: written without fixing the checksum
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        if damage == "nan":
            arrays["x"][0, 0, 0, 0] = np.nan
        elif damage == "label":
            arrays["y"][3] = 99
        else:
            del arrays["part"]
        np.savez_compressed(path, **arrays)
    with pytest.warns(RuntimeWarning, match="is damaged"):
        again = data.spoken_keywords(**kw)
    np.testing.assert_array_equal(again.train.x, d.train.x)
    assert synth._read_cache(path)["x"].shape[0] == 36   # rewritten, and it verifies


def test_spoken_keywords_cache_writes_are_atomic_and_unique(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from hamqcore.study.data import synth

    rng = np.random.default_rng(0)
    arrays = {"x": rng.standard_normal((12, 1, 49, 10)).astype(np.float32), "y": np.arange(12) % 12,
              "g": np.zeros(12, np.int64), "part": np.zeros(12, np.int64), "speakers": np.array(["a"])}
    path = tmp_path / "c" / "set.npz"
    with ThreadPoolExecutor(4) as pool:   # several writers at once: each its own temporary file
        list(pool.map(lambda _: synth._write_cache(path, arrays), range(8)))
    assert sorted(p.name for p in path.parent.iterdir()) == ["set.npz"]
    np.testing.assert_array_equal(synth._read_cache(path)["x"], arrays["x"])


def test_spoken_keywords_audio_is_speech_and_silence_is_quiet():
    d = data.spoken_keywords(n_speakers=3, takes=1, split=(0.34, 0.34), return_audio=True, cache=False)
    audio = d.info["audio"]
    assert audio.shape == (36, 16000) and np.abs(audio).max() <= 1.0
    labels = np.arange(36) % 12
    energy = (audio**2).mean(axis=1)
    keyword = energy[labels < 10]
    assert (keyword > 0).all()
    assert np.median(energy[labels == 10]) < np.median(keyword) * 5  # silence is noise only


def test_spoken_keywords_errors():
    with pytest.raises(ValueError, match="n_speakers must be a positive integer, got 0"):
        data.spoken_keywords(n_speakers=0)
    with pytest.raises(ValueError, match="split must be two fractions"):
        data.spoken_keywords(n_speakers=5, split=(0.6, 0.5))
    with pytest.raises(ValueError, match="leaves no training speaker"):
        data.spoken_keywords(n_speakers=2)


def _reference_mfcc(y, sr=16000, n_fft=640, hop=320, n_mels=40, n_mfcc=10):
    """MFCC from the definitions (numpy/scipy only): periodic Hann frames, power spectrum, Slaney
    mel filterbank with area normalisation, 10 log10 with an 80 dB floor below the peak, DCT-II."""
    frames = np.stack([y[i:i + n_fft] for i in range(0, len(y) - n_fft + 1, hop)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    def hz_to_mel(f):
        f = np.asarray(f, float)
        lin = f / (200.0 / 3)
        return np.where(f >= 1000, 15 + np.log(np.maximum(f, 1e-10) / 1000) / (np.log(6.4) / 27), lin)
    def mel_to_hz(m):
        m = np.asarray(m, float)
        return np.where(m >= 15, 1000 * np.exp((np.log(6.4) / 27) * (m - 15)), m * 200.0 / 3)
    mels = mel_to_hz(np.linspace(hz_to_mel(0), hz_to_mel(sr / 2), n_mels + 2))
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        lo, c, hi = mels[i], mels[i + 1], mels[i + 2]
        fb[i] = np.maximum(0, np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)))
        fb[i] *= 2.0 / (hi - lo)
    S = power @ fb.T
    db = 10 * np.log10(np.maximum(S, 1e-10))
    db = np.maximum(db, db.max() - 80)
    return dct(db, type=2, norm="ortho", axis=1)[:, :n_mfcc]


def test_mfcc_of_a_tone_matches_an_independent_computation():
    t = np.arange(16000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1250 * t)).astype(np.float32)
    got = data.mfcc(tone)
    assert got.shape == (49, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, _reference_mfcc(tone.astype(np.float64)), rtol=1e-3, atol=1e-2)
    # a 22.05 kHz input is resampled to 16 kHz first
    t2 = np.arange(22050) / 22050
    assert data.mfcc(np.sin(2 * np.pi * 440 * t2), sr=22050).shape == (49, 10)


def _fake_cifar(root, n=20):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        with open(root / name, "wb") as f:
            pickle.dump(batch, f)


def test_cifar10_from_a_folder(tmp_path):
    _fake_cifar(tmp_path / "cifar-10-batches-py")
    d = data.cifar10(tmp_path)
    assert d.train.x.shape == (100, 3, 32, 32) and d.test.x.shape == (20, 3, 32, 32)
    assert d.augment == "cifar" and d.classes[0] == "airplane"
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"][0].reshape(3, 32, 32)
    expect = (raw / 255.0 - np.array(data.CIFAR_MEAN)[:, None, None]) / np.array(data.CIFAR_STD)[:, None, None]
    np.testing.assert_allclose(d.train.x[0], expect, rtol=1e-5, atol=1e-5)
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    out = data.augment_batch(x, torch.Generator().manual_seed(0), pad=1)
    assert out.shape == x.shape
    for i in range(2):  # each output is a crop of the padded image, maybe flipped
        p = torch.nn.functional.pad(x[i], (1, 1, 1, 1))
        crops = [p[:, a:a + 4, b:b + 4] for a in range(3) for b in range(3)]
        assert any(torch.equal(out[i], c) or torch.equal(out[i], c.flip(-1)) for c in crops)


def test_cifar10_errors(tmp_path):
    with pytest.raises(data.DataError, match=r"missing data_batch_1, .*test_batch in .*python version"):
        data.cifar10(tmp_path)
    _fake_cifar(tmp_path / "c")
    (tmp_path / "c" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(data.DataError, match="test_batch is not a CIFAR-10 python batch"):
        data.cifar10(tmp_path / "c")
    _fake_cifar(tmp_path / "bad_labels")
    with open(tmp_path / "bad_labels" / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 10, 1]}, f)
    with pytest.raises(data.DataError, match=r"data_batch_2: labels must be in 0..9, found 10"):
        data.cifar10(tmp_path / "bad_labels")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(data.DataError, match="afile is not a folder"):
        data.cifar10(tmp_path / "afile")


def _fake_speech_commands(root):
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    val, test = [], []
    for w_i, word in enumerate(list(data.KEYWORDS) + ["bed", "cat"]):
        (root / word).mkdir(parents=True)
        for spk in range(3):
            name = f"{spk:08x}_nohash_0.wav"
            tone = (0.3 * np.sin(2 * np.pi * (200 + 60 * w_i) * t) * 32767).astype(np.int16)
            wavfile.write(root / word / name, 16000, tone)
            (val if spk == 1 else test if spk == 2 else [None]).append(f"{word}/{name}")
    (root / "_background_noise_").mkdir()
    wavfile.write(root / "_background_noise_" / "white.wav", 16000, (rng.standard_normal(48000) * 3000).astype(np.int16))
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")


def test_speech_commands_from_a_folder(tmp_path):
    _fake_speech_commands(tmp_path)
    d = data.speech_commands(tmp_path)
    for s in (d.train, d.val, d.test):
        assert s.x.shape[1:] == (1, 49, 10)
        counts = np.bincount(s.y, minlength=12)
        assert list(counts[:10]) == [1] * 10          # one clip per keyword per split
        # the TensorFlow recipe: unknown and silence each 10 % of the keyword clips (ceil): one of the
        # two other-word clips (bed, cat), one 1 s cut of the background noise
        assert counts[11] == 1 and counts[10] == 1
    assert not set(d.train.groups[d.train.groups >= 0]) & set(d.test.groups[d.test.groups >= 0])
    more = data.speech_commands(tmp_path, unknown_percentage=100, silence_percentage=50)
    assert np.bincount(more.train.y, minlength=12)[10:].tolist() == [5, 2]   # silence 50 % of 10; both unknowns


def test_wav_formats_are_normalised(tmp_path):
    t = np.arange(1600) / 16000
    tone = np.sin(2 * np.pi * 440 * t)
    wavfile.write(tmp_path / "u8.wav", 16000, np.round(tone * 127 + 128).astype(np.uint8))
    wavfile.write(tmp_path / "i16.wav", 16000, np.round(tone * 32767).astype(np.int16))
    wavfile.write(tmp_path / "f32.wav", 16000, tone.astype(np.float32))
    for name, tol in (("u8.wav", 1.5 / 128), ("i16.wav", 1e-4), ("f32.wav", 1e-7)):
        audio, sr = data.read_wav(tmp_path / name)
        assert sr == 16000 and audio.dtype == np.float32
        np.testing.assert_allclose(audio, tone, atol=tol)   # unsigned 8-bit is centred on 128


def test_speech_commands_errors(tmp_path):
    with pytest.raises(data.DataError, match=r"missing validation_list.txt, testing_list.txt, _background_noise_, yes"):
        data.speech_commands(tmp_path)
    with pytest.raises(ValueError, match="version must be 1 or 2"):
        data.speech_commands(tmp_path, version=3)
    with pytest.raises(ValueError, match="unknown data set 'imagenet'"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="reads a local folder"):
        data.load("cifar10")
    root = tmp_path / "sc"
    _fake_speech_commands(root)
    for f in (root / "_background_noise_").iterdir():
        f.unlink()
    with pytest.raises(data.DataError, match=r"_background_noise_ holds no .wav file, so the _silence_ class"):
        data.speech_commands(root)
    assert 10 not in data.speech_commands(root, silence_percentage=0).train.y
    (root / "testing_list.txt").unlink()
    (root / "testing_list.txt").mkdir()
    with pytest.raises(data.DataError, match="testing_list.txt must be a text file"):
        data.speech_commands(root, silence_percentage=0)
    with pytest.raises(ValueError, match="unknown_percentage must be a percentage in 0..100, got 120"):
        data.speech_commands(root, unknown_percentage=120)


def test_models():
    assert sum(p.numel() for p in resnet18().parameters()) == 11_173_962  # the standard CIFAR ResNet-18
    assert resnet18(num_classes=10, in_channels=1, width=8)(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    sizes = {}
    for size in ("S", "M", "L"):
        m = ds_cnn(size)
        sizes[size] = sum(p.numel() for n, p in m.named_parameters() if p.dim() > 1)
        assert m(torch.zeros(3, 1, 49, 10)).shape == (3, 12)
    assert 20_000 < sizes["S"] < 26_000   # "Hello Edge" DS-CNN-S: ~23 k weights
    assert 120_000 < sizes["M"] < 160_000  # ~140 k
    assert 380_000 < sizes["L"] < 460_000  # ~420 k
    q = ds_cnn("S", quantize=(6, 6))
    from hamqcore.quant import QConv2d
    assert isinstance(q.conv1, QConv2d) and q.conv1.w_bits == 6
    with pytest.raises(ValueError, match="size must be one of 'S', 'M', 'L'"):
        ds_cnn("XL")
    with pytest.raises(ValueError, match="width must be a positive integer"):
        resnet18(width=0)
    with pytest.raises(TypeError, match="width must be an integer, got '8'"):
        resnet18(width="8")
    with pytest.raises(TypeError, match="num_classes must be an integer, got 2.5"):
        ds_cnn("S", num_classes=2.5)
    with pytest.raises(TypeError, match="size must be a string, got 1"):
        ds_cnn(1)


def test_load_dispatches_each_spec_to_its_loader(monkeypatch):
    """data.load hands every name its loader and arguments (the loaders themselves are tested above)."""
    calls = []

    def recorder(name):
        def fn(*args, **kw):
            calls.append((name, args, kw))
            return name
        return fn

    for name in ("mnist5k", "digits", "spoken_keywords", "cifar10", "speech_commands"):
        monkeypatch.setattr(data, name, recorder(name))
    assert data.load("mnist5k", seed=3) == "mnist5k" and calls[-1] == ("mnist5k", (), {"seed": 3})
    assert data.load("digits", seed=4) == "digits" and calls[-1] == ("digits", (), {"seed": 4})
    assert data.load("spoken_keywords", quick=True, seed=5) == "spoken_keywords"
    assert calls[-1] == ("spoken_keywords", (), {"n_speakers": 40, "seed": 5})
    data.load("spoken_keywords")
    assert calls[-1] == ("spoken_keywords", (), {"n_speakers": 160, "seed": 0})
    assert data.load("cifar10:/d/c10") == "cifar10" and calls[-1] == ("cifar10", ("/d/c10",), {})
    data.load("speech_commands:/d/sc", seed=6)
    assert calls[-1] == ("speech_commands", ("/d/sc",), {"version": 2, "seed": 6})
    data.load("speech_commands1:/d/sc1")
    assert calls[-1] == ("speech_commands", ("/d/sc1",), {"version": 1, "seed": 0})


def test_containers_checks_say_what_is_wrong(monkeypatch, tmp_path):
    from hamqcore.study.data import containers

    x, y = np.zeros((3, 2), np.float32), np.array([0, 1, 2])
    with pytest.raises(data.DataError, match=r"^t: 3 inputs but 2 labels$"):
        containers.check_arrays("t", x, y[:2], 3)
    bad = x.copy()
    bad[0, 0], bad[1, 1] = np.nan, np.inf
    with pytest.raises(data.DataError, match=r"^t: 2 input values are NaN or inf$"):
        containers.check_arrays("t", bad, y, 3)
    (a, b), (mean, std) = containers.standardise(np.full(4, 2.0), np.full(2, 5.0))
    assert (mean, std) == (2.0, 1.0) and a.tolist() == [0.0] * 4 and b.tolist() == [3.0, 3.0]   # constant: std 1
    with pytest.raises(data.DataError, match=r"hamqcore never downloads it\.$"):
        containers.require_folder(tmp_path / "nope", ["a"], "set", "a folder")
    monkeypatch.delenv("HAMQCORE_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert containers.cache_dir() == tmp_path / ".cache" / "hamqcore"
    monkeypatch.setenv("HAMQCORE_CACHE", str(tmp_path / "c"))
    assert containers.cache_dir() == tmp_path / "c"
