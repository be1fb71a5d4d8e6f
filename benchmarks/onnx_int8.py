"""Accuracy and speed cost of int8 quantisation of an exported ensemble, on a labelled store.

    python benchmarks/onnx_int8.py CKPT... --data STORE
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import save  # noqa: E402

from hccr.evaluate import topk_accuracy  # noqa: E402
from hccr.export import OnnxRecognizer, export_onnx, quantize_int8  # noqa: E402
from hccr.predict import predict_inputs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpts", nargs="+")
    ap.add_argument("--data", required=True)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hccr-int8-"))
    fp32 = export_onnx(args.ckpts, tmp / "ens.onnx")
    int8 = quantize_int8(fp32, tmp / "ens.int8.onnx")
    rows = []
    for name, path in (("fp32", fp32), ("int8", int8)):
        rec = OnnxRecognizer(path)
        t = time.perf_counter()
        pred = predict_inputs(rec, [args.data], crops=5, progress=False)
        dt = time.perf_counter() - t
        acc = topk_accuracy(pred.probs, pred.labels)
        rows.append({"model": name, "MB": path.stat().st_size / 1e6, "top1": acc["top1"], "top5": acc["top5"],
                     "ms_per_char": 1000 * dt / len(pred)})
        print(rows[-1], flush=True)
    rows[1]["top1_cost"] = rows[0]["top1"] - rows[1]["top1"]
    print(f"int8 top-1 cost: {rows[1]['top1_cost']:+.4f}")
    save("onnx_int8", {"data": args.data, "members": args.ckpts, "rows": rows})


if __name__ == "__main__":
    main()
