"""A run's classifier bias with the class prior it inherited from a packaged parent put back.

    python docs/gb2312-run/real-writers-round-24/put_back.py RUN_BEST.json PARENT.json STORE OUT_STEM

A run started (``init=``) from a packaged model keeps the parent's division by the prior in its bias (round 22's
finding); this undoes the parent's packaging (PARENT's recorded power, STORE's counts, checked against the record)
on the run's weights, as round 20's raw_bias.py does on the parent itself. Writes a plain checkpoint for ``hccr average``."""
import sys

from hccr.checkpoint import load_checkpoint, read_meta, save_checkpoint
from hccr.packaging import counts_per_char, divide_out_prior

run_ref, parent_ref, store, out = sys.argv[1:5]
model, meta = load_checkpoint(run_ref)
pc = read_meta(parent_ref)["prior_correction"]
assert "prior_correction" not in meta, "the run's own checkpoint is already packaged"
per_char = counts_per_char(store)
counts = [per_char.get(c, 0) for c in meta["charset"]]
assert (min(counts), max(counts)) == (pc["min_count"], pc["max_count"]), (min(counts), max(counts), pc)
model = model.float()
moved = divide_out_prior(model, counts, pc["power"], undo=True)
assert moved == pc["classes_shifted"], (moved, pc)
print("bias moved back in", moved, "classes at power", pc["power"], "; wrote", save_checkpoint(out, model, meta))
