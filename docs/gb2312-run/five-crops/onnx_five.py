# The record of a measurement on machine C (2026-12-05): the shipped gb2312's one-crop ONNX file reading the
# validation writers with one crop and with five (crops cut in numpy, hccr.runtime.OnnxRecognizer), top-1 and ECE.
import time

from hccr.evaluate import calibration
from hccr.runtime import load_recognizer, predict_inputs

rec = load_recognizer("gb2312")
for crops in (1, 5):
    t = time.perf_counter()
    p = predict_inputs(rec, [".bench/olhwdb-val"], crops=crops, progress=False)
    ok = p.probs.argmax(1) == p.labels
    print(f"crops {crops}: top-1 {ok.mean():.4f} ({ok.sum()} of {len(ok)}), ECE {calibration(p.probs, p.labels)['ece']:.4f}, "
          f"{time.perf_counter() - t:.0f} s", flush=True)

# output, machine C, 2026-12-05:
# crops 1: top-1 0.9357 (35046 of 37456), ECE 0.0035, 45 s
# crops 5: top-1 0.9388 (35162 of 37456), ECE 0.0076, 132 s
# output, machine C, 2026-12-06, round 20s shipped:
# crops 1: top-1 0.9375 (35116 of 37456), ECE 0.0032, 40 s
# crops 5: top-1 0.9408 (35240 of 37456), ECE 0.0067, 111 s
