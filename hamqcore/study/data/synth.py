"""``spoken_keywords``: SYNTHETIC speech in the Speech Commands label space, spoken by eSpeak NG (shipped
by the espeakng-loader wheel) with many voices, pitches and rates, augmented like the KWS recipes, split
by speaker, generated once and cached (verified on every load, regenerated when damaged).

eSpeak's wave generator keeps state from one utterance to the next (neither re-initialising nor
reseeding resets it), so each fixed chunk of speakers is synthesised in a fresh Python process (the
worker protocol: a pickled job on stdin, pickled clips on stdout): the audio then depends on the seed
alone, not on the worker count or earlier calls.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .containers import DataError, DataSet, Split, cache_dir, check_arrays
from .speech import KEYWORDS, KWS_CLASSES, SAMPLE_RATE, features, fit_length

UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine", "one",
                 "seven", "sheila", "six", "three", "tree", "two", "wow", "zero", "learn", "follow", "forward",
                 "backward", "visual")

ESPEAK_LANGS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                "en-us-nyc")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "croak", "klatt",
                   "klatt2", "klatt3", "whisper", "Alex", "Andy", "Annie", "Demonic", "Denis", "Gene", "Lee",
                   "Michael", "Mike", "Storm", "Tweaky", "adam", "anika", "aunty", "belinda", "benjamin", "boris",
                   "caleb", "david", "edward", "grandma", "grandpa", "ian", "john", "linda", "max", "norbert",
                   "paul", "quincy", "rob", "robert", "shelby", "steph", "travis", "victor", "zac")
SPOKEN_KEYWORDS_VERSION = 4  # 4: the cache holds a checksum of its arrays


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
        clip = fit_length(speech, SAMPLE_RATE, min(max(0, centre + shift), SAMPLE_RATE - len(speech)))
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

    # Run in the folder that holds the hamqcore in use (site-packages, or the checkout of an editable
    # install), so the worker imports the same one whatever the caller's working directory holds.
    here = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-c", "from hamqcore.study.data.synth import _worker_main; _worker_main()"],
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
    path = _cache_path(n_speakers, takes, seed, (val_frac, test_frac), return_audio)
    if cache:
        _check_cache_location(path)
    if cache and path.exists():
        try:
            return _kws_dataset(_read_cache(path))
        except Exception as e:  # noqa: BLE001 - any damage: say so and build it again
            warnings.warn(f"spoken_keywords: the cached set {path} is damaged ({type(e).__name__}: {e}); "
                          "regenerating it", RuntimeWarning, stacklevel=2)
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
    x = features(audio)
    y, g = np.array(ys, np.int64), np.array(gs, np.int64)
    perm = np.random.default_rng(seed + 1).permutation(n_speakers)
    test_spk, val_spk = perm[:n_test], perm[n_test:n_test + n_val]
    part = np.where(np.isin(g, test_spk), 2, np.where(np.isin(g, val_spk), 1, 0))
    arrays = {"x": x, "y": y, "g": g, "part": part, "speakers": np.array(speakers)}
    if return_audio:
        arrays["audio"] = np.stack(audio)
    check_arrays("spoken_keywords", arrays["x"], arrays["y"], len(KWS_CLASSES))
    if cache:
        _write_cache(path, arrays)
    return _kws_dataset(arrays)


_CACHE_KEYS = ("x", "y", "g", "part", "speakers")


def _checksum(arrays: Dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode() + str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes() if a.dtype.kind != "U" else "\n".join(a.ravel().tolist()).encode())
    return h.hexdigest()


def _cache_path(n_speakers: int, takes: int, seed: int, split, return_audio: bool) -> Path:
    """The cache file of one parameter set (a key of every parameter and the generator version)."""
    key = {"version": SPOKEN_KEYWORDS_VERSION, "n_speakers": n_speakers, "takes": takes, "seed": seed,
           "split": [float(split[0]), float(split[1])], "audio": return_audio}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"spoken_keywords-v{SPOKEN_KEYWORDS_VERSION}-{digest}.npz"


def _check_cache_location(path: Path) -> None:
    """A DataError before any synthesis when the cache cannot be used: its folder cannot be created or
    written, or something other than a regular file sits at its path (a FIFO there would block)."""
    if path.exists() and not path.is_file():
        raise DataError(f"spoken_keywords: {path} exists and is not a regular file; remove it, or set "
                        "HAMQCORE_CACHE to another folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise DataError(f"spoken_keywords: the cache folder {path.parent} is not writable ({e.strerror or e}); "
                        "set HAMQCORE_CACHE to a writable folder, or pass cache=False") from None


def _write_cache(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    """Atomically: a unique temporary file in the same folder, then a rename, so concurrent builders
    never share a temporary and readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp.npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, checksum=np.array(_checksum(arrays)), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_cache(path: Path) -> Dict[str, np.ndarray]:
    """The cached arrays, verified: every key present, the stored checksum matching the content,
    finite features, labels in range; else an exception (the caller regenerates)."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    missing = [k for k in (*_CACHE_KEYS, "checksum") if k not in arrays]
    if missing:
        raise KeyError(f"missing {missing}")
    stored = str(arrays.pop("checksum"))
    if stored != _checksum(arrays):
        raise ValueError("checksum mismatch")
    check_arrays("spoken_keywords cache", arrays["x"], arrays["y"], len(KWS_CLASSES))
    if not np.isin(arrays["part"], (0, 1, 2)).all():
        raise ValueError("split labels outside 0..2")
    return arrays


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

