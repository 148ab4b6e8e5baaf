"""The acoustic side's input: decoding clips, log-mel and MFCC features, and ``features.lmdb``."""

from ..usercache import configure_numba_cache

# Before any module here imports librosa (and with it numba): its JIT cache must go where this
# user can write, not into the installation.
configure_numba_cache()
