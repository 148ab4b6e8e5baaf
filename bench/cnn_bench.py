"""CNN throughput: training windows/s and prediction clips/s on 30 s clips (``make bench``).

Renders a synthetic world with audio (30 s clips), extracts features, trains WMF, then times
``train_cnn`` with the default CNNConfig and ``predict_clips`` over every clip. Writes
``bench/results/cnn.json``. ``python -m bench.cnn_bench [--songs N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.common import write_result  # noqa: E402


def bench_cnn(command: str, songs: int = 600, users: int = 2000, max_epochs: int = 10) -> dict:
    import torch

    from pmrs.acoustic.model import CNNConfig
    from pmrs.acoustic.predict import predict_clips
    from pmrs.acoustic.stages import StoreLogMels
    from pmrs.acoustic.train import train_cnn
    from pmrs.audio.extract import ExtractConfig, extract
    from pmrs.audio.store import FEATURES_FILE, FeatureStore
    from pmrs.ingest import ingest
    from pmrs.synth.generate import synthesize
    from pmrs.synth.world import SynthConfig
    from pmrs.collaborative.training import train_wmf_run
    from pmrs.collaborative.wmf import WMFConfig, load_run

    with tempfile.TemporaryDirectory(prefix="pmrs-cnn-bench-") as tmp:
        root = Path(tmp)
        synthesize(root / "data", SynthConfig(users=users, songs=songs, clip_seconds=30.0, cold_share=0.0))
        ingest(root / "data", root / "work")
        extract(root / "data", root / "work", ExtractConfig(), show_progress=False)
        model_wmf, _, song_ids = load_run(train_wmf_run(root / "work", WMFConfig(factors=32), show_progress=False))
        ids = [s.decode() for s in song_ids]
        cfg = CNNConfig(max_epochs=max_epochs, patience=max_epochs)  # time a fixed number of epochs
        with FeatureStore(root / "work" / FEATURES_FILE, readonly=True) as store:
            mels = StoreLogMels(store, ids)
            t0 = time.perf_counter()
            model, history = train_cnn(mels, (ids, model_wmf.song_factors), None, cfg, show_progress=False)
            train_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            pred = predict_clips(model, mels, show_progress=False)
            predict_s = time.perf_counter() - t0
    epochs = history["epochs"]
    windows = sum(e["windows_per_s"] * e["seconds"] for e in epochs)
    payload = {
        "clip_seconds": 30.0, "songs": songs, "device": str(model.device),
        "torch_threads": cfg.threads, "torch_version": torch.__version__,
        "train": {"epochs": len(epochs), "seconds": round(train_s, 2),
                  "windows_per_second": round(windows / sum(e["seconds"] for e in epochs), 1),
                  "seconds_per_epoch": round(sum(e["seconds"] for e in epochs) / len(epochs), 2),
                  "best_val_loss": history["best_val_loss"],
                  "val_loss_mean_predictor": history["val_loss_mean_predictor"]},
        "predict": {"clips": len(pred["song_ids"]), "seconds": round(predict_s, 2),
                    "clips_per_second": round(len(pred["song_ids"]) / predict_s, 1),
                    "audio_seconds_per_second": round(30.0 * len(pred["song_ids"]) / predict_s, 1)},
    }
    write_result("cnn", payload, command)
    return payload


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cnn_bench")
    p.add_argument("--songs", type=int, default=600)
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args(argv)
    command = "python -m bench.cnn_bench " + " ".join(argv if argv is not None else sys.argv[1:])
    print(bench_cnn(command.strip(), songs=args.songs, max_epochs=args.epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
