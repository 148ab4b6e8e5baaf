"""``features.lmdb``: per-song log-mel spectrograms and MFCC summaries.

One LMDB file (``subdir=False``; a writer also keeps ``features.lmdb-lock`` beside it) with three
named databases, keys being UTF-8 song ids:

- ``log_mel``: song_id -> record holding ``log_mel``, ``(n_mels, frames)`` float16 (dB);
- ``summary``: song_id -> record holding ``mfcc_summary``, ``(6 * n_mfcc,)`` float32, with
  ``seconds`` and ``frames`` in its header (small, so scans over every song stay cheap);
- ``meta``: ``format`` -> ``b"1"``; ``feature_config`` -> JSON of the :class:`FeatureConfig` the
  store was created with; ``created_at`` -> ISO time.

A record is ``b"PMF1"``, a little-endian uint32 header length, a UTF-8 JSON header
``{"arrays": [{"name", "dtype", "shape"}, ...], ...}``, then each array's C-order bytes in header
order. No pickles anywhere.

Unlike the catalog, this store is written in place, one LMDB transaction per clip (both records
of a song in the same transaction), so extraction can resume: a killed run loses at most the clip
being written. Readers open it read-only without a lock file (``lock=False``), which is safe only
while no writer is active.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import time
from pathlib import Path
from typing import Iterable

import lmdb
import numpy as np

from .features import ClipFeatures, FeatureConfig

FEATURES_FILE = "features.lmdb"
FORMAT_VERSION = b"1"
_DBS = (b"log_mel", b"summary", b"meta")
_MAGIC = b"PMF1"
_HEAD = struct.Struct("<4sI")
_MAP_SIZE = 1 << 40  # address space only: the file grows as written (about 330 kB per 30 s clip)


def pack_record(arrays: dict[str, np.ndarray], **fields) -> bytes:
    """Serialise named arrays plus JSON-able ``fields`` (see the module docstring)."""
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    for name, a in arrays.items():
        if a.dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object; refusing to store it")
    header = dict(fields, arrays=[{"name": k, "dtype": a.dtype.newbyteorder("<").str,
                                   "shape": list(a.shape)} for k, a in arrays.items()])
    head = json.dumps(header, separators=(",", ":")).encode()
    body = [a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes() for a in arrays.values()]
    return b"".join([_HEAD.pack(_MAGIC, len(head)), head, *body])


def unpack_record(raw: bytes | memoryview) -> tuple[dict[str, np.ndarray], dict]:
    """Inverse of :func:`pack_record`: (arrays (own copies, writable), other header fields)."""
    magic, n = _HEAD.unpack_from(raw, 0)
    if magic != _MAGIC:
        raise ValueError("not a PMRS feature record (bad magic)")
    header = json.loads(bytes(raw[_HEAD.size:_HEAD.size + n]))
    offset = _HEAD.size + n
    arrays = {}
    for spec in header.pop("arrays"):
        dtype, shape = np.dtype(spec["dtype"]), tuple(spec["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        arrays[spec["name"]] = np.frombuffer(raw, dtype=dtype, count=count,
                                             offset=offset).reshape(shape).copy()
        offset += count * dtype.itemsize
    return arrays, header


class FeatureStore:
    """Read and write ``features.lmdb``.

    Parameters
    ----------
    path : str or path-like
        The store file (``<workdir>/features.lmdb``).
    readonly : bool
        Open for reading only, without a lock file; the store must exist, and no writer may be
        active at the same time.
    config : FeatureConfig or None
        Writers: the settings the features are computed with. A new store records them (None:
        the defaults); an existing store whose recorded settings differ in any field that
        determines feature values raises ``ValueError`` rather than mixing features. Readers may
        pass it to check the same way.

    Examples
    --------
    >>> with FeatureStore("pmrs-data/features.lmdb", readonly=True) as store:
    ...     x = store.get_log_mel("SOAKIMP12A8C130995")   # (128, frames) float16
    """

    def __init__(self, path: str | os.PathLike, readonly: bool = False,
                 config: FeatureConfig | None = None):
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.is_file():
                raise FileNotFoundError(f"no feature store at {self.path}; "
                                        "run `pmrs extract AUDIO_DIR` first")
            self._env = lmdb.open(str(self.path), subdir=False, readonly=True, lock=False,
                                  max_dbs=len(_DBS), readahead=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._env = lmdb.open(str(self.path), subdir=False, map_size=_MAP_SIZE,
                                  max_dbs=len(_DBS), readahead=False)
        try:
            self._log_mel, self._summary, self._meta = (
                self._env.open_db(name, create=not readonly) for name in _DBS)
            self._config = self._check_config(config)
        except BaseException:
            self._env.close()
            raise

    def _check_config(self, config: FeatureConfig | None) -> FeatureConfig:
        with self._env.begin() as txn:
            raw = txn.get(b"feature_config", db=self._meta)
            version = txn.get(b"format", db=self._meta)
        if raw is None:
            if self.readonly:
                raise ValueError(f"{self.path} is not a PMRS feature store (no recorded config)")
            stored = config or FeatureConfig()
            with self._env.begin(write=True) as txn:
                txn.put(b"format", FORMAT_VERSION, db=self._meta)
                txn.put(b"feature_config", json.dumps(dataclasses.asdict(stored)).encode(),
                        db=self._meta)
                txn.put(b"created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()).encode(),
                        db=self._meta)
            return stored
        if version != FORMAT_VERSION:
            raise ValueError(f"{self.path} has feature store format {version!r}; this PMRS reads "
                             f"{FORMAT_VERSION!r}. Extract again into a new work directory.")
        known = {f.name for f in dataclasses.fields(FeatureConfig)}
        stored = FeatureConfig(**{k: v for k, v in json.loads(raw).items() if k in known})
        if config is not None:
            a, b = stored.defining(), config.defining()
            diff = [f"{k}: stored {a[k]!r}, requested {b[k]!r}" for k in a if a[k] != b[k]]
            if diff:
                raise ValueError(f"{self.path} holds features computed with other settings "
                                 f"({'; '.join(diff)}). Use the stored settings, another work "
                                 "directory, or delete the store to extract again.")
        return stored

    # -- context manager
    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing
    def put(self, song_id: str, features: ClipFeatures) -> None:
        """Store (or replace) one song's features, committed before returning.

        Parameters
        ----------
        song_id : str
        features : ClipFeatures
            ``log_mel`` ``(n_mels, frames)`` and ``mfcc_summary`` ``(6 * n_mfcc,)`` matching the
            store's config.
        """
        if self.readonly:
            raise PermissionError(f"{self.path} is open read-only")
        cfg = self._config
        lm = np.asarray(features.log_mel)
        summary = np.asarray(features.mfcc_summary)
        if lm.ndim != 2 or lm.shape[0] != cfg.n_mels:
            raise ValueError(f"log_mel must be ({cfg.n_mels}, frames), got {lm.shape}")
        if summary.shape != (cfg.n_summary,):
            raise ValueError(f"mfcc_summary must be ({cfg.n_summary},), got {summary.shape}")
        key = song_id.encode()
        with self._env.begin(write=True) as txn:
            txn.put(key, pack_record({"log_mel": lm.astype(np.float16, copy=False)}),
                    db=self._log_mel)
            txn.put(key, pack_record({"mfcc_summary": summary.astype(np.float32, copy=False)},
                                     seconds=float(features.seconds), frames=int(lm.shape[1])),
                    db=self._summary)

    # -- reading
    def config(self) -> FeatureConfig:
        """The settings recorded when the store was created."""
        return self._config

    def __contains__(self, song_id: object) -> bool:
        if not isinstance(song_id, str):
            return False
        with self._env.begin() as txn:
            return txn.get(song_id.encode(), db=self._summary) is not None

    def __len__(self) -> int:
        with self._env.begin() as txn:
            return txn.stat(self._summary)["entries"]

    def song_ids(self) -> list[str]:
        """Every stored song id, sorted (bytewise UTF-8 order, which is str order for ASCII)."""
        with self._env.begin() as txn:
            return [k.decode() for k in txn.cursor(db=self._summary).iternext(values=False)]

    def get(self, song_id: str) -> ClipFeatures | None:
        """The song's features, or None when it has none."""
        key = song_id.encode()
        with self._env.begin(buffers=True) as txn:
            raw_s = txn.get(key, db=self._summary)
            if raw_s is None:
                return None
            s_arrays, fields = unpack_record(raw_s)
            lm_arrays, _ = unpack_record(txn.get(key, db=self._log_mel))
        return ClipFeatures(log_mel=lm_arrays["log_mel"], mfcc_summary=s_arrays["mfcc_summary"],
                            seconds=float(fields["seconds"]))

    def get_log_mel(self, song_id: str) -> np.ndarray:
        """``(n_mels, frames)`` float16 log-mel spectrogram in dB; ``KeyError`` when absent."""
        with self._env.begin(buffers=True) as txn:
            raw = txn.get(song_id.encode(), db=self._log_mel)
            if raw is None:
                raise KeyError(f"no features for song {song_id!r} in {self.path}")
            return unpack_record(raw)[0]["log_mel"]

    def mfcc_summaries(self, song_ids: Iterable[str]) -> np.ndarray:
        """``(n, 6 * n_mfcc)`` float32 MFCC summaries in the order given; ``KeyError`` for an
        id without features."""
        ids = list(song_ids)
        out = np.empty((len(ids), self._config.n_summary), np.float32)
        with self._env.begin(buffers=True) as txn:
            for i, sid in enumerate(ids):
                raw = txn.get(sid.encode(), db=self._summary)
                if raw is None:
                    raise KeyError(f"no features for song {sid!r} in {self.path}")
                out[i] = unpack_record(raw)[0]["mfcc_summary"]
        return out

    def seconds(self, song_ids: Iterable[str]) -> np.ndarray:
        """``(n,)`` float64 clip durations in seconds, in the order given."""
        with self._env.begin(buffers=True) as txn:
            out = []
            for sid in song_ids:
                raw = txn.get(sid.encode(), db=self._summary)
                if raw is None:
                    raise KeyError(f"no features for song {sid!r} in {self.path}")
                out.append(unpack_record(raw)[1]["seconds"])
        return np.asarray(out, dtype=np.float64)
