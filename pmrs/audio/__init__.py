"""The acoustic side's input: decoding clips, log-mel and MFCC features, and ``features.lmdb``."""
