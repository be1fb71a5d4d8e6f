from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hccr.quickstart import data_folder

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("HCCR_REAL_DATA", data_folder(ROOT) / "casia-hwdb-22"))
CHARS = "安宁家字学宝定实室客宫害宿寒察它守完宏宙"


def random_samples(n: int, seed: int = 0, chars: str = CHARS + "A1%") -> list[tuple[np.ndarray, str]]:
    """Random-sized random bitmaps with labels, including one-byte GBK symbols."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = rng.integers(1, 90, size=2)
        img = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
        out.append((img, chars[i % len(chars)]))
    return out


def blob_samples(n: int, seed: int = 0, chars: str = CHARS[:5]) -> list[tuple[np.ndarray, str]]:
    """Learnable toy 'characters': each class is a different dark bar pattern on white."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = i % len(chars)
        img = np.full((48, 40), 255, np.uint8)
        y = 4 + 8 * k + rng.integers(-1, 2)
        img[y : y + 5, 4:36] = rng.integers(0, 60)
        img[4:44, 4 + 7 * k : 9 + 7 * k] = rng.integers(0, 60)
        out.append((img, chars[k]))
    return out


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """``hccr ARGS`` in a fresh process (``env``: variables added to this one's)."""
    return subprocess.run([sys.executable, "-m", "hccr.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, **env} if env else None)


def fit_cut_after(steps: int, monkeypatch, *args, **kwargs) -> None:
    """``hccr.train.fit(*args, **kwargs)`` interrupted after its first ``steps`` steps (the machine goes away in
    the middle of an epoch), as a run with resume points every step leaves its folder."""
    import hccr.train as T

    real_epoch = T.train_one_epoch

    def cut(*a, **kw):
        after = kw["after_step"]

        def after_step(i):
            stop = after(i)
            if i == steps - 1:
                raise KeyboardInterrupt
            return stop

        return real_epoch(*a, **{**kw, "after_step": after_step})

    with monkeypatch.context() as m:
        m.setattr(T, "train_one_epoch", cut)
        with pytest.raises(KeyboardInterrupt):
            T.fit(*args, **kwargs)


needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real CASIA-HWDB sample not found at {REAL}")


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """A small store of synthetic handwriting: 4 easy characters x 80 writers, 32 px, 20% validation."""
    from hccr.data.store import ConvertOptions, convert
    from hccr.data.synth import SynthConfig, synth

    root = tmp_path_factory.mktemp("tiny")
    synth(root / "gnt", SynthConfig(chars="一十口人", writers=80, seed=0, size=40), workers=1, progress=False)
    res = convert([str(root / "gnt")], root / "store", ConvertOptions(size=32, val_fraction=0.2, split_by_writer=True),
                  workers=1, progress=False)
    return res.path


@pytest.fixture(scope="session")
def tiny_run(tiny_store, tmp_path_factory):
    """A charnet-s trained for two epochs on ``tiny_store`` at 32 px."""
    from hccr.config import apply_overrides, get_preset
    from hccr.train import fit

    out = tmp_path_factory.mktemp("run") / "run"
    cfg = apply_overrides(get_preset("fast-1"), ["image_size=32", "batch_size=32", "epochs=2", "warmup_epochs=0",
                                                 "amp_probe=false"])
    fit(cfg, tiny_store, out, progress=False)
    return out


@contextlib.contextmanager
def served(model: str | os.PathLike) -> Iterator[tuple[str, subprocess.Popen]]:
    """``hccr serve --model MODEL`` as its own process on a free local port: ``(base URL, process)`` once /healthz
    answers; terminated when the block ends."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty server never blocks on a full pipe
    proc = subprocess.Popen([sys.executable, "-m", "hccr.cli", "serve", "--model", str(model), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if proc.poll() is not None:
                    log.seek(0)
                    raise AssertionError(f"hccr serve exited ({proc.returncode}): {log.read()[-2000:]}") from None
                time.sleep(0.1)
        else:
            raise AssertionError(f"hccr serve at {url} did not answer /healthz in time")
        proc.log = log  # what it printed, for a test to read
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
