"""Vectors for songs added live, from the bundle's own models.

A bundle built from a CNN run carries that CNN (its state_dict and config) and the feature
settings its clips were extracted with (manifest ``live_models``). :func:`bundle_encoder` makes
an encoder of them: the clip's bytes are written to a private temporary file named like the
upload (the extension tells the decoder the container), decoded and featurised by the same code
as ``pmrs extract`` (``pmrs.audio.extract.extract_one``: the same middle-of-the-track window,
resampling, silence and length checks), and the CNN predicts the song's factors (the acoustic
source's vector, combined with what the bundle knows of its artist, release and tags as
``indexer build`` combined the cold songs', ``pmrs.acoustic.cold``), its embedding and its genre
probabilities, as ``pmrs predict`` does. A bundle
without those models adds songs by their catalog fields alone: they are found by id but have no
vectors (and say so in their sources).

A bundle with a metadata source also carries its model (``pmrs.metadata.MetadataModel``:
vocabularies, weights, the tags' idf, the SVD's components): an added song gets the metadata
vector it would have had in the catalog the bundle was built from, with or without audio.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..serving import contract as C
from ..errors import InvalidArgument, ResourceExhausted
from .state import EncodedSong, Encoder, no_encoder

log = logging.getLogger(__name__)

#: Largest clip an AddSong may carry, bytes (a 30 s clip is well under 1 MiB as MP3/OGG, ~5 MiB
#: as 44.1 kHz stereo WAV; a whole track as FLAC fits too).
MAX_CLIP_BYTES = 16 * 2**20


class ClipRejected(InvalidArgument):
    """A clip that cannot be used: undecodable, silent, too short (the reason says which)."""


class ClipTooLarge(ClipRejected, ResourceExhausted):
    """A clip over :data:`MAX_CLIP_BYTES` (gRPC RESOURCE_EXHAUSTED)."""

    code = ResourceExhausted.code


_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class CNNEncoder:
    """Encodes songs with the CNN and feature settings stored in a bundle. Thread-safe (one
    prediction at a time: a clip's few windows take milliseconds)."""

    def __init__(self, bundle, entry: dict):
        from ..acoustic.model import CNNConfig, LatentFactorCNN
        from ..audio.features import FeatureConfig
        import torch

        path = Path(bundle.path)
        cfg = CNNConfig.from_dict(json.loads((path / entry["config"]).read_text(encoding="utf-8")))
        state = torch.load(path / entry["weights"], map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path / entry['weights']} is not a state_dict of tensors")
        model = LatentFactorCNN(cfg)
        model.load_state_dict(state)
        self.model = model.eval()
        raw = json.loads((path / entry["features"]).read_text(encoding="utf-8"))
        names = {f.name for f in dataclasses.fields(FeatureConfig)}
        self.features = FeatureConfig(**{k: (tuple(v) if isinstance(v, list) else v)
                                         for k, v in raw.items() if k in names})
        self.genres = list(bundle.genres)
        self.cold = None   # pmrs.acoustic.cold.ColdModel: the prediction combined with the catalog
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Encode two seconds of noise once: the first clip of a process pays for loading the
        decoder, compiling the feature code and the CNN's first pass (20 s on the loaded bench
        machine), which belongs to start-up, not to a caller's AddSong."""
        import io

        import soundfile as sf

        try:
            rate = self.features.sample_rate_hz
            noise = np.random.default_rng(0).standard_normal(2 * rate).astype(np.float32) * 0.1
            buf = io.BytesIO()
            sf.write(buf, noise, rate, format="WAV")
            self({}, ("warm-up.wav", buf.getvalue()))
        except Exception as exc:   # (a warm-up that fails changes nothing)
            log.debug("encoder warm-up failed: %s", exc)

    def __call__(self, fields: dict, clip: tuple[str, bytes] | None) -> EncodedSong:
        if clip is None:
            return EncodedSong()
        name, data = clip
        if len(data) > MAX_CLIP_BYTES:
            raise ClipTooLarge(f"the clip has {len(data):,} bytes; at most {MAX_CLIP_BYTES:,} are taken")
        if not data:
            raise ClipRejected("the clip is empty")
        from ..acoustic.predict import predict_windows
        from ..audio.extract import extract_one
        from ..indexing.inputs import unit_rows

        suffix = Path(name or "").suffix.lower()
        suffix = suffix if _SAFE_SUFFIX.match(suffix) else ""
        with tempfile.TemporaryDirectory(prefix="pmrs-clip-") as tmp:
            path = Path(tmp) / f"clip{suffix}"
            path.write_bytes(data)
            got = extract_one(str(path), self.features)
        if not got["ok"]:
            raise ClipRejected(f"the clip cannot be used ({got['reason']}): {got['detail']}")
        log_mel = np.asarray(got["features"].log_mel, np.float32)
        with self._lock:
            out = predict_windows(self.model, log_mel)
        factors = out["factors"].mean(axis=0, dtype=np.float64).astype(np.float32)
        emb = unit_rows(out["embeddings"].mean(axis=0, dtype=np.float64).astype(np.float32)[None, :])[0]
        probs = out["genre_probs"]
        probs = None if probs is None else probs.mean(axis=0, dtype=np.float64).astype(np.float32)
        if probs is not None and len(probs) != len(self.genres):
            probs = None
        if self.cold is not None:   # (as `indexer build` made the cold songs' vectors)
            tags = {str(t): 100.0 for t in fields.get("tags") or ()}
            factors = self.cold.vector(fields, tags, factors)
        return EncodedSong({C.ACOUSTIC: factors}, emb, probs)


class MetadataEncoder:
    """The metadata vector of an added song from the bundle's metadata model."""

    def __init__(self, bundle, entry: dict):
        from ..metadata import MetadataModel

        path = Path(bundle.path)
        doc = json.loads((path / entry["model"]).read_text(encoding="utf-8"))
        components = (np.load(path / entry["components"], allow_pickle=False) if entry.get("components")
                      else None)
        self.model = MetadataModel.from_json(doc, components)

    def __call__(self, fields: dict) -> np.ndarray:
        tags = {str(t): 100.0 for t in fields.get("tags") or ()}   # (tags given at full weight)
        return self.model.vector(fields, tags)


class BundleEncoder:
    """The encoder of ``bundle``'s models: the CNN for a clip (acoustic vector, embedding, genre
    probabilities) and the metadata model for the fields; a song gets what the bundle carries
    (a clip sent to a bundle without a CNN is refused, :class:`ClipRejected`).

    The models are loaded on the first song (torch, the weights, a metadata vocabulary that can
    hold hundreds of thousands of tokens), not when a bundle is opened: a server that never adds
    a song never pays for them. :meth:`warm_up` loads them and runs the audio path once in a
    daemon thread (a server that takes writes calls it when it opens a bundle)."""

    def __init__(self, bundle):
        self.bundle = bundle
        self._models = bundle.manifest.get("live_models") or {}
        self._loaded: tuple | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple:
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            b, models = self.bundle, self._models
            cnn = meta = None
            if models.get("cnn") and b.has_source(C.ACOUSTIC):
                try:
                    cnn = CNNEncoder(b, models["cnn"])
                except (OSError, ValueError, KeyError, RuntimeError) as exc:
                    log.warning("bundle %s: cannot load its CNN for songs added live (%s); clips are refused",
                                b.version, exc)
            if models.get(C.METADATA) and b.has_source(C.METADATA):
                try:
                    meta = MetadataEncoder(b, models[C.METADATA])
                except (OSError, ValueError, KeyError) as exc:
                    log.warning("bundle %s: cannot load its metadata model (%s); added songs get no "
                                "metadata vector", b.version, exc)
            if cnn is not None and models.get("cold"):
                try:
                    from ..acoustic.cold import ColdModel
                    cnn.cold = ColdModel.load(Path(b.path), models["cold"]["model"])
                except (OSError, ValueError, KeyError) as exc:
                    log.warning("bundle %s: cannot load its cold-start model (%s); added songs get the "
                                "CNN's prediction alone", b.version, exc)
            self._loaded = (cnn, meta)
            return self._loaded

    def warm_up(self) -> None:
        def run() -> None:
            cnn, _ = self._load()
            if cnn is not None:
                cnn.warm_up()

        threading.Thread(target=run, name="pmrs-encoder-load", daemon=True).start()

    def __call__(self, fields: dict, clip) -> EncodedSong:
        cnn, meta = self._load()
        enc = cnn(fields, clip) if cnn is not None else _fields_only(fields, clip)
        if meta is None:
            return enc
        v = meta(fields)
        vectors = dict(enc.vectors)
        if np.any(v):   # (a song with no known token has no metadata vector, as in the catalog)
            vectors[C.METADATA] = v
        return EncodedSong(vectors, enc.embedding, enc.genre_probs)


def bundle_encoder(bundle, warm_up: bool = False) -> Encoder:
    """:class:`BundleEncoder` of ``bundle``; ``warm_up``: load and run it once in the background now."""
    enc = BundleEncoder(bundle)
    if warm_up:
        enc.warm_up()
    return enc


def _fields_only(fields: dict, clip) -> EncodedSong:
    if clip is not None:
        raise ClipRejected("this bundle carries no CNN (it was built without a CNN run, or by an "
                           "older indexer): add the song without audio, or rebuild the bundle")
    return no_encoder(fields, clip)
