"""The main job: synthetic handwriting -> stores -> three fast models -> five-crop predictions ->
paper-weighted and fitted ensembles -> evaluation report, in one resumable command."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import HccrError

# Visually confusable characters sharing the 宀 radical.
DEFAULT_CHARS = "宀它宄守安完宏宓宕宙实宠审室宪宰害宴容宿宁宇宋宗官定宜家宫寄"


@dataclass
class QuickstartConfig:
    chars: str = DEFAULT_CHARS
    train_writers: int = 120  # of which val_fraction are held out (whole writers) for validation
    test_writers: int = 30
    val_fraction: float = 0.1
    epochs: int | None = None  # None: as many as ``train_minutes`` allow on this machine (2-30)
    train_minutes: float = 5.0  # wall time for the three models together, from a short speed probe
    size: int = 64
    seed: int = 0
    online: bool = True  # also read the OLHWDB validation writers with the shipped model, if the archive is there

    @classmethod
    def tiny(cls) -> QuickstartConfig:
        return cls(chars="宀安完宏害宴", train_writers=24, test_writers=8, val_fraction=0.25, epochs=2, online=False)


def epochs_for(store: Path, minutes: float, members: int, size: int = 64, bounds: tuple[int, int] = (2, 30)) -> tuple[int, float]:
    """Epochs per member that fit ``minutes`` of training for ``members`` models on this machine:
    a few timed steps of fast-1 (in the precision training will pick) give its speed; returns
    (epochs, measured img/s). The loop's reading and augmentation cost about a fifth more."""
    import torch

    from .config import get_preset
    from .data.store import Store
    from .models import create_model
    from .precision import _cpu_has_bf16
    from .train import probe_precision

    cfg = get_preset("fast-1")
    cfg.image_size = size
    st = Store(store)
    model = create_model(cfg.model, len(st.charset), size, **cfg.model_args).to(memory_format=torch.channels_last)
    if _cpu_has_bf16():
        probe = probe_precision(model, cfg, torch.device("cpu"), len(st.charset), steps=2)
        rate = max(probe["fp32_img_per_s"], probe["bf16_img_per_s"])
    else:
        import time

        x = torch.rand(cfg.batch_size, 1, size, size).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, len(st.charset), (cfg.batch_size,))
        for i in range(3):
            if i == 1:
                t = time.perf_counter()
            out = model(x)
            torch.nn.functional.cross_entropy((out[0] if isinstance(out, tuple) else out), y).backward()
        rate = 2 * cfg.batch_size / (time.perf_counter() - t)
    per_epoch = st.manifest["train"] / (rate / 1.2)
    return int(min(max(minutes * 60 / members / per_epoch, bounds[0]), bounds[1])), rate


def train_member(preset: str, epochs: int, size: int, store: Path, out: Path, progress: bool = True,
                 overrides: tuple[str, ...] = ()) -> None:
    """Train one preset on a store, reusing a finished run and resuming an unfinished one."""
    from .config import apply_overrides, get_preset
    from .train import fit
    from .utils import read_json

    tc = get_preset(preset)
    tc.epochs = epochs
    tc.image_size = size
    tc = apply_overrides(tc, list(overrides))
    if (out / "last.json").exists() and read_json(out / "last.json")["epoch"] >= tc.epochs:
        print(f"{out}: already trained, reusing it")
        return
    fit(tc, store, out, resume=(out / "last.state.pt").exists(), progress=progress)


def run(out: str | Path = "runs/quickstart", cfg: QuickstartConfig | None = None, real: list[str] | None = None,
        progress: bool = True) -> dict:
    from .data.store import ConvertOptions, Store, convert
    from .data.synth import SynthConfig, synth
    from .utils import use_all_cores, write_json

    cfg = cfg or QuickstartConfig()
    out = Path(out)
    t_start = time.perf_counter()
    use_all_cores()
    n_writers = cfg.train_writers + cfg.test_writers

    print(f"[1/6] synthetic handwriting: {len(cfg.chars)} characters x {n_writers} writers")
    gnt = out / "data" / "gnt"
    files = synth(gnt, SynthConfig(chars=cfg.chars, writers=n_writers, seed=cfg.seed), progress=progress)
    train_files, test_files = files[: cfg.train_writers], files[cfg.train_writers :]

    print("[2/6] packed stores (train/val by writer, test = unseen writers)")
    stores = {}
    for name, srcs, vf in (("train", train_files, cfg.val_fraction), ("test", test_files, 0.0)):
        path = out / "data" / name
        if not (path / "manifest.json").exists():
            convert([str(f) for f in srcs], path, ConvertOptions(size=cfg.size, charset=cfg.chars, val_fraction=vf,
                                                                 split_by_writer=vf > 0, seed=cfg.seed),
                    progress=False)
        stores[name] = Store(path)
    print(f"      train {stores['train'].manifest['train']}, val {stores['train'].manifest['val']}, "
          f"test {len(stores['test'])} samples")

    real_store = None
    if real:
        real_store = out / "data" / "real"
        if not (real_store / "manifest.json").exists():
            res = convert(real, real_store, ConvertOptions(size=cfg.size, charset=cfg.chars), progress=False)
            if res.skipped:
                print(f"      real data: kept {res.count} samples of the demo's characters, skipped {res.skipped}")
    evals = {"synthetic test writers": stores["test"].path}
    if real_store is not None:
        evals["real handwriting"] = real_store
    epochs = cfg.epochs
    if epochs is None:
        epochs, rate = epochs_for(stores["train"].path, cfg.train_minutes, 3, cfg.size)
        print(f"      this machine trains fast-1 at about {rate:.0f} img/s: {epochs} epochs per model fit the "
              f"{cfg.train_minutes:g}-minute training budget (--epochs N sets it)")
    result = fit_and_ensemble(stores["train"].path, evals, out, epochs, cfg.size, progress=progress)
    tables, weights = result["tables"], result["weights"]
    for title, rows in shipped_check(real or default_real(), stores["test"].path, out / "data" if cfg.online else None):
        tables.setdefault(title, {}).update(rows)

    elapsed = time.perf_counter() - t_start
    for title, table in tables.items():
        print(f"\n{title}:")
        print(format_table(table))
    print(f"\nfitted weights: {', '.join(f'{w:.2f}' for w in weights)}; whole run {elapsed / 60:.1f} min")
    print("reports: " + ", ".join(str(p) for p in result["reports"]))
    result = {**result, "seconds": elapsed}
    write_json(out / "quickstart.json", result)
    return result


def fit_and_ensemble(train_store: Path, eval_stores: dict[str, Path], out: Path, epochs: int, size: int = 64,
                     members: tuple[str, ...] = ("fast-1", "fast-2", "fast-3"), progress: bool = True) -> dict:
    """Train the members (resumably), predict with five crops, fit ensemble weights on the validation
    split, and evaluate members and both ensembles on each evaluation store."""
    from .ensemble import combine, fit_weights
    from .evaluate import evaluate
    from .predict import Recognizer, predict_inputs

    print(f"[3/6] training {', '.join(members)} ({epochs} epochs each)")
    for m in members:
        train_member(m, epochs, size, train_store, out / "models" / m, progress)
    print("[4/6] five-crop predictions and ensembles")
    preds_dir = out / "preds"
    preds_dir.mkdir(parents=True, exist_ok=True)
    recs = {m: Recognizer.from_checkpoint(out / "models" / m) for m in members}
    val = {m: predict_inputs(recs[m], [str(train_store)], crops=5, split="val", progress=False) for m in members}
    weights = fit_weights([val[m] for m in members])
    print("[5/6] evaluation reports")
    tables, reports = {}, []
    for k, (title, store) in enumerate(eval_stores.items()):
        tag = "test" if k == 0 else f"eval{k}"
        preds = {m: predict_inputs(recs[m], [str(store)], crops=5, progress=False) for m in members}
        for m, p in preds.items():
            p.save(preds_dir / f"{m}.{tag}.npz")
        paper = combine(list(preds.values()))  # the paper's 0.3/0.2/0.5 for its three members
        fitted = combine(list(preds.values()), weights.tolist())
        paper.save(preds_dir / f"ensemble-paper.{tag}.npz")
        fitted.save(preds_dir / f"ensemble-fitted.{tag}.npz")
        rep_dir = out / ("report" if k == 0 else f"report-{tag}")
        rep = evaluate(fitted, rep_dir, compare={**preds, "ensemble (paper 0.3/0.2/0.5)": paper},
                       name="ensemble (fitted)")
        tables[title] = rep["table"]
        reports.append(rep_dir / "report.md")
    return {"tables": tables, "weights": weights.tolist(), "reports": [str(r) for r in reports]}


def data_folder(checkout: str | os.PathLike = ".") -> Path:
    """Where the real data lies, outside the checkout: ``$HCCR_DATA``, else ``shared/data`` beside ``checkout``
    (the project's folder; the benchmarks and tests pass theirs)."""
    return Path(os.environ.get("HCCR_DATA", Path(checkout) / ".." / "shared" / "data"))


def casia22_test() -> Path:
    return data_folder() / "casia-hwdb-22" / "CASIA-HWDB_Test" / "Test"


def olhwdb_archive() -> Path:
    return data_folder() / "casia-olhwdb1.1-train.tar.xz"

# The shipped model's validation writers: every 22nd of the archive's 220 by name (scripts/train_gb2312.sh)
VALIDATION_WRITERS = ("1023-c", "1047-c", "1071-c", "1095-c", "1119-c", "1143-c", "1167-c", "1191-c", "1215-c",
                      "1239-c")


def default_real() -> list[str] | None:
    return [str(casia22_test())] if casia22_test().is_dir() else None


def validation_writers(work: Path) -> Path | None:
    """The shipped model's validation writers (CASIA-OLHWDB1.1, never trained on) as a store, made
    once from the archive beside the checkout; None without it."""
    import tarfile

    from .data.store import ConvertOptions, convert

    store = work / "olhwdb-val"
    if (store / "manifest.json").exists():
        return store
    archive = olhwdb_archive()
    if not archive.is_file():
        return None
    folder = work / "olhwdb-val-pot"
    folder.mkdir(parents=True, exist_ok=True)
    if not list(folder.rglob("*.pot")):
        try:  # one pass through the archive, taking only these writers' files
            with tarfile.open(archive) as tf:
                for member in tf:
                    if Path(member.name).stem in VALIDATION_WRITERS and member.isfile():
                        tf.extract(member, folder, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise HccrError(f"{archive}: cannot unpack the validation writers ({e})") from None
    pots = sorted(str(p) for p in folder.rglob("*.pot"))
    if not pots:
        return None
    convert(pots, store, ConvertOptions(size=64, charset="gb2312"), progress=False)
    return store


def shipped_check(real: list[str] | None, synthetic_test: Path, work: Path | None) -> list[tuple[str, dict]]:
    """The shipped GB2312 recognizers, answering among all their 6,763 characters: on real scans
    (casia-hwdb-22's test images beside the checkout, or ``--real``), on the validation writers'
    trajectories when the OLHWDB archive is there, else on the unseen synthetic writers."""
    from .evaluate import topk_accuracy
    from .runtime import load_recognizer, predict_inputs
    from .zoo import SHIPPED

    sets = []
    if real:
        sets.append(("real handwriting", real))
    val = validation_writers(work) if work is not None else None
    if val is not None:
        sets.append(("real writers never trained on (OLHWDB validation writers, level 1)", [str(val)]))
    if not sets:
        print(f"[6/6] no real handwriting found in {data_folder()} (casia-hwdb-22/, casia-olhwdb1.1-train.tar.xz; "
              "HCCR_DATA=FOLDER names another, --real FOLDER adds your own): the shipped models read the synthetic "
              "test writers")
        sets.append(("synthetic test writers", [str(synthetic_test)]))
    out = []
    for title, inputs in sets:
        rows = {}
        for name in SHIPPED:
            try:
                rec = load_recognizer(name)
            except HccrError as e:
                print(f"[6/6] shipped recognizer {name} skipped: {e}")
                continue
            print(f"[6/6] the shipped recognizer {name} ({len(rec.charset):,} classes) on {title}")
            pred = predict_inputs(rec, inputs, crops=getattr(rec, "crops", 1), progress=False)
            known = pred.labels >= 0
            if not known.any():
                continue
            acc = topk_accuracy(pred.probs[known], pred.labels[known], ks=(1, 5))
            if (~known).any():
                print(f"      {int((~known).sum())} images of characters outside GB2312 left out")
            label = "shipped gb2312 (6,763-way)" if name == "gb2312" else f"{name} (6,763-way)"
            rows[label] = {**acc, "ms_per_char": pred.meta["ms_per_char"]}
        if rows:
            out.append((title, rows))
    return out


def format_table(table: dict[str, dict]) -> str:
    lines = [f"{'model':32s} {'top-1':>7s} {'top-5':>7s} {'ms/char':>8s}"]
    for name, r in table.items():
        ms = r.get("ms_per_char")
        lines.append(f"{name:32s} {r['top1']:7.4f} {r.get('top5', float('nan')):7.4f} "
                     f"{ms if ms is None else f'{ms:8.3f}'}")
    return "\n".join(lines)


def check_real(paths: list[str]) -> list[str]:
    for p in paths:
        if not Path(p).exists():
            raise HccrError(f"{p}: no such folder (--real expects a <root>/<char>/<n>.png folder or CASIA files)")
        if Path(p).is_dir() and not any(f.is_file() for f in Path(p).rglob("*")):
            raise HccrError(f"{p}: an empty folder (--real expects a <root>/<char>/<n>.png folder or CASIA files)")
    return paths
