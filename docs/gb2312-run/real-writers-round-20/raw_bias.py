"""A packaged model's classifier bias with its class prior put back (the inverse of ``hccr package --divide-prior``).

    python docs/gb2312-run/real-writers-round-20/raw_bias.py MODEL.json STORE OUT_STEM

STORE must hold the counts the model was packaged with (checked: the recorded min, max and number of classes moved). The output is a
plain checkpoint (no prior correction, calibration or evaluations; its provenance kept) for ``hccr average``."""
import sys

from hccr.checkpoint import load_checkpoint, save_checkpoint
from hccr.packaging import counts_per_char, divide_out_prior

model_ref, store, out = sys.argv[1:4]
model, meta = load_checkpoint(model_ref)
pc = meta["prior_correction"]
per_char = counts_per_char(store)
counts = [per_char.get(c, 0) for c in meta["charset"]]
assert (min(counts), max(counts)) == (pc["min_count"], pc["max_count"]), (min(counts), max(counts), pc)
model = model.float()
moved = divide_out_prior(model, counts, pc["power"], undo=True)
assert moved == pc["classes_shifted"], (moved, pc)  # the same classes as the packaging moved
meta = {k: v for k, v in meta.items() if k not in ("prior_correction", "calibration", "evaluations", "weights_dtype")}
print("bias moved back in", moved, "classes; wrote", save_checkpoint(out, model, meta))
