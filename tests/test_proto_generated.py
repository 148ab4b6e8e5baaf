"""The generated Python code in pmrs/v1/ must match proto/pmrs/v1/recommender.proto."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ("recommender_pb2.py", "recommender_pb2.pyi", "recommender_pb2_grpc.py")


def test_generated_code_is_fresh(tmp_path):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}",
                    f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}", f"--pyi_out={tmp_path}",
                    str(ROOT / "proto" / "pmrs" / "v1" / "recommender.proto")], check=True)
    for name in GENERATED:
        fresh = (tmp_path / "pmrs" / "v1" / name).read_text()
        committed = (ROOT / "pmrs" / "v1" / name).read_text()
        assert committed == fresh, f"pmrs/v1/{name} is stale: run `make proto` and commit the result"


def test_service_surface():
    from pmrs.v1 import recommender_pb2 as pb

    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["Recommender"].methods}
    assert {"Recommend", "SimilarSongs", "GetSong", "GetBundleInfo", "Ping"} <= methods
    req = pb.RecommendRequest(user_id="u", k=5)
    assert not req.HasField("acoustic_share")  # unset is distinguishable from 0
    req.acoustic_share = 0.0
    assert req.HasField("acoustic_share")
