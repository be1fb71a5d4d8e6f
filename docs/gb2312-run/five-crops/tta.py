# The record of a measurement on machine C (2026-12-05): the shipped gb2312 (11b) on the validation writers, one crop (ONNX) and five (PyTorch checkpoint).
import time, numpy as np
from hccr.runtime import load_recognizer, predict_inputs
for crops in (1, 5):
    rec = load_recognizer("gb2312", crops=crops) if crops > 1 else load_recognizer("gb2312")
    t = time.perf_counter()
    p = predict_inputs(rec, [".bench/olhwdb-val"], crops=crops, progress=False)
    top = p.probs.argmax(1)
    print(crops, type(rec).__name__, round(float((top == p.labels).mean()), 4), int((top == p.labels).sum()), round(time.perf_counter() - t), "s", flush=True)
