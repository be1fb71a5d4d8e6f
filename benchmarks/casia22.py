"""Real-data benchmark: fast-1..3 and their ensembles on ../shared/data/casia-hwdb-22.

    python -m benchmarks casia22 [--epochs 40] [--work .bench/casia22]

Trains on the PNG training set (10% held out, stratified, for model selection and for fitting the
ensemble weights), reports top-1 once on the test set (writers disjoint from training).
Resumable: finished steps are reused when the command is run again with the same --work.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import OUT, real_stores, save

from hccr.data.store import Store
from hccr.quickstart import fit_and_ensemble, format_table
from hccr.utils import use_all_cores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--work", default=str(OUT / "casia22"))
    args = ap.parse_args()
    use_all_cores()
    work = Path(args.work)
    t0 = time.perf_counter()
    train, test = real_stores(work / "train", work / "test", val_fraction=0.1)
    res = fit_and_ensemble(train, {"casia-hwdb-22 test": test}, work, args.epochs)
    wall = time.perf_counter() - t0
    table = res["tables"]["casia-hwdb-22 test"]
    print(format_table(table))
    print(f"fitted weights {res['weights']}, wall time {wall / 60:.1f} min")
    save("casia22", {"epochs": args.epochs, "table": table, "weights": res["weights"], "wall_seconds": wall,
                     "train": Store(train).manifest["train"], "val": Store(train).manifest["val"],
                     "test": len(Store(test))})


if __name__ == "__main__":
    main()
