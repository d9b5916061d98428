"""Speech: the KWS label space, MFCC features shared by every speech set, and Google Speech Commands
from a local folder (the standard TensorFlow / "Hello Edge" recipe)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .containers import DataError, DataSet, Split, require_folder, check_arrays

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
KWS_CLASSES = KEYWORDS + ("_silence_", "_unknown_")
SAMPLE_RATE = 16000


def mfcc(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """MFCC features as in the KWS recipes: 1 s at 16 kHz -> (49, 10): 40 ms Hann windows, 20 ms
    hop, no centring, 40 mel bands (Slaney), log power (dB), DCT-II (ortho), first 10 coefficients."""
    import librosa

    audio = np.asarray(audio, dtype=np.float32)
    if sr != SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=sr, target_sr=SAMPLE_RATE)
    audio = fit_length(audio, SAMPLE_RATE)
    m = librosa.feature.mfcc(y=audio, sr=SAMPLE_RATE, n_mfcc=10, n_fft=640, hop_length=320, n_mels=40, center=False)
    return m.T.astype(np.float32)


def fit_length(audio: np.ndarray, n: int, offset: int = 0) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    src = audio[max(0, -offset):]
    start = max(0, offset)
    k = min(len(src), n - start)
    if k > 0:
        out[start:start + k] = src[:k]
    return out


def features(clips: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([mfcc(c) for c in clips])[:, None].astype(np.float32)


def read_wav(path: Path) -> Tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], sample rate) of a wav file of any PCM or float format:
    signed integers divided by their full scale, unsigned 8-bit centred on 128."""
    from scipy.io import wavfile

    try:
        sr, data = wavfile.read(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise DataError(f"speech_commands: cannot read {path} as a wav file: {e}") from e
    data = np.asarray(data)
    if data.dtype.kind == "u":    # 8-bit PCM is unsigned, silence at 128
        data = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype.kind == "i":
        data = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    if data.ndim > 1:
        data = data.mean(axis=1)
    return data.astype(np.float32), int(sr)


def speech_commands(root, version: int = 2, unknown_percentage: float = 10.0, silence_percentage: float = 10.0,
                    seed: int = 0) -> DataSet:
    """Google Speech Commands (v1 or v2) from its standard folder: one folder of 1 s wavs per word,
    ``validation_list.txt`` and ``testing_list.txt`` (paths relative to root), ``_background_noise_/``.

    12 classes as in TensorFlow's speech_commands recipe (``input_data.py``) and Hello Edge: the 10
    keywords; ``_unknown_``, a random sample of the other words' clips of size
    ``unknown_percentage`` % of the split's keyword clips; ``_silence_``, as many 1 s cuts of the
    background noise (``silence_percentage`` %) scaled by a random volume. The sampling is fixed by
    ``seed``. Features: :func:`mfcc`.
    """
    if version not in (1, 2):
        raise ValueError(f"version must be 1 or 2, got {version!r}")
    for name, v in (("unknown_percentage", unknown_percentage), ("silence_percentage", silence_percentage)):
        if not (isinstance(v, (int, float)) and 0 <= v <= 100):
            raise ValueError(f"{name} must be a percentage in 0..100, got {v!r}")
    root = Path(root)
    need = ["validation_list.txt", "testing_list.txt", "_background_noise_"] + list(KEYWORDS)
    require_folder(root, need, "speech_commands",
             f"the Speech Commands v{version} tree: one folder of .wav files per word (yes/, no/, ...), "
             "_background_noise_/, validation_list.txt and testing_list.txt, as unpacked from "
             f"speech_commands_v0.0{'2' if version == 2 else '1'}.tar.gz (https://arxiv.org/abs/1804.03209)")
    for name in ("validation_list.txt", "testing_list.txt"):
        if not (root / name).is_file():
            raise DataError(f"speech_commands: {root / name} must be a text file listing word/file.wav paths")
    val_list = set((root / "validation_list.txt").read_text().split())
    test_list = set((root / "testing_list.txt").read_text().split())
    noise_files = sorted((root / "_background_noise_").glob("*.wav"))
    if silence_percentage > 0 and not noise_files:
        raise DataError(f"speech_commands: {root / '_background_noise_'} holds no .wav file, so the _silence_ "
                        "class cannot be made (set silence_percentage=0 to train without it)")
    words = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    files: Dict[int, Dict[str, List[Tuple[Path, int]]]] = {p: {"kw": [], "unk": []} for p in (0, 1, 2)}
    for word in words:
        for wav in sorted((root / word).glob("*.wav")):
            rel = f"{word}/{wav.name}"
            part = 2 if rel in test_list else 1 if rel in val_list else 0
            if word in KEYWORDS:
                files[part]["kw"].append((wav, KWS_CLASSES.index(word)))
            else:
                files[part]["unk"].append((wav, KWS_CLASSES.index("_unknown_")))
    if not any(files[p]["kw"] for p in files):
        raise DataError(f"speech_commands: no .wav files under the keyword folders of {root}")
    rng = np.random.default_rng(seed)
    noises = [read_wav(p) for p in noise_files]
    speakers: Dict[str, int] = {}
    silence = KWS_CLASSES.index("_silence_")

    def split(part: int) -> Split:
        kw, unk = files[part]["kw"], files[part]["unk"]
        n_unk = min(len(unk), int(math.ceil(len(kw) * unknown_percentage / 100)))
        chosen = kw + [unk[i] for i in sorted(rng.permutation(len(unk))[:n_unk])]
        feats, ys, gs = [], [], []
        for wav, label in chosen:
            audio, sr = read_wav(wav)
            feats.append(mfcc(audio, sr))
            ys.append(label)
            gs.append(speakers.setdefault(wav.name.split("_nohash_")[0], len(speakers)))
        for _ in range(int(math.ceil(len(kw) * silence_percentage / 100)) if noises else 0):
            audio, sr = noises[int(rng.integers(len(noises)))]
            start = int(rng.integers(0, max(1, len(audio) - sr)))
            feats.append(mfcc(audio[start:start + sr] * rng.uniform(0, 1), sr))
            ys.append(silence)
            gs.append(-1)
        if not feats:
            return Split(np.zeros((0, 1, 49, 10), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
        return Split(np.stack(feats)[:, None], np.array(ys, np.int64), np.array(gs, np.int64))

    tr, va, te = split(0), split(1), split(2)
    mean, std = (float(tr.x.mean()), float(tr.x.std())) if len(tr) else (0.0, 1.0)
    for name, s in (("train", tr), ("validation", va), ("test", te)):
        s.x = ((s.x - mean) / (std or 1.0)).astype(np.float32)
        check_arrays(f"speech_commands {name}", s.x, s.y, len(KWS_CLASSES))
    return DataSet("speech_commands", KWS_CLASSES, tr, te, val=va,
                   info={"root": str(root), "version": version, "unknown_percentage": unknown_percentage,
                         "silence_percentage": silence_percentage})
