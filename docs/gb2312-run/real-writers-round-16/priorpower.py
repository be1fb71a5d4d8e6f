"""Analysis (no choice rides on it): the shipped 11b read at other prior powers, on cached features of the online
validation writers (level 1) and of 12 built-in synthetic writers (level 2). Its bias holds power 0.5 of round 11's
store prior; power p moves it by (0.5 - p) log prior."""
import numpy as np
from safetensors.numpy import load_file
from hccr.data.charset import gb2312_chars
from hccr.data.store import Store
from hccr.predict import Recognizer
rec = Recognizer.from_checkpoint("/work/main/hccr/assets/gb2312.json"); cs = rec.charset; C = len(cs)
sd = load_file("/work/main/hccr/assets/gb2312.safetensors"); W = sd["head.1.weight"].astype(np.float32); b = sd["head.1.bias"].astype(np.float32)
st = Store("/work/hccr-runs/gb2312-r15/store")
lab = np.array([cs.index[c] for c in st.charset])[st.labels]
split = np.asarray(st.split) if hasattr(st, "split") else np.load("/work/hccr-runs/gb2312-r15/store/split.npy")
counts = np.bincount(lab[split == 0], minlength=C).astype(np.float64)
print("train counts", counts.min(), counts.max(), counts.sum(), "split values", np.unique(split))
logp = np.log(counts / counts.sum()).astype(np.float32)
z = np.load("/work/hccr-runs/shipped-headfit/feats.npz"); fv, lv, fs, ls = z["fv"], z["lv"], z["fs"], z["ls"]
l1 = set(gb2312_chars(True)); level2 = np.array([c not in l1 for c in cs.chars]) if hasattr(cs, "chars") else None
if level2 is None:
    level2 = np.zeros(C, bool); level2[[cs.index[c] for c in gb2312_chars(False) if c not in l1]] = True
s2 = level2[ls]
lv_logit = fv @ W.T; ls_logit = fs[s2] @ W.T
for p in (0.75, 0.5, 0.375, 0.25, 0.125, 0.0):
    bb = b + (0.5 - p) * logp
    pv = (lv_logit + bb).argmax(1); ps = (ls_logit + bb).argmax(1)
    print(f"p {p:5.3f}: level 1 {np.mean(pv == lv):.4f} (to level 2 {np.sum((pv != lv) & level2[pv])}), "
          f"synthetic level 2 {np.mean(ps == ls[s2]):.4f} of {s2.sum()}", flush=True)
