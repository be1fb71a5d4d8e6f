"""Recognising without PyTorch: the shipped model, .onnx files, prediction files and the server."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

# Run the CLI (or a snippet) in a Python where `import torch` and `import safetensors` fail.
NO_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['safetensors'] = None; "


def _cli_without_torch(*args: str) -> subprocess.CompletedProcess:
    code = NO_TORCH + "from hccr.cli import main; sys.argv = ['hccr', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cross_png(tmp_path_factory) -> Path:
    img = np.full((60, 60), 255, np.uint8)
    img[10:50, 28:32] = 0
    img[28:32, 10:50] = 0
    path = tmp_path_factory.mktemp("img") / "ten.png"
    Image.fromarray(img).save(path)
    return path


def test_cli_recognises_with_the_shipped_model_and_onnx_files_without_torch(cross_png, tmp_path):
    r = _cli_without_torch("predict", cross_png, "--topk", "3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(":", 1)[1].split()[0] == "十"
    r = _cli_without_torch("predict", "--model", ROOT / "hccr" / "assets" / "gb2312.onnx", cross_png,
                           "--out", tmp_path / "p.npz")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "p.npz")["probs"].shape == (1, 6763)


def test_a_pytorch_checkpoint_without_torch_says_what_to_install(tiny_run, cross_png):
    r = _cli_without_torch("predict", "--model", tiny_run, cross_png)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(tiny_run) in r.stderr and "pip install 'hccr[train]'" in r.stderr and "hccr export" in r.stderr


def test_python_api_and_server_without_torch(cross_png):
    code = NO_TORCH + (
        "import hccr, json\n"
        "rec = hccr.load()\n"
        f"print(rec.predict({str(cross_png)!r}, topk=1)[0][0][0])\n"
        "from fastapi.testclient import TestClient\n"
        "from hccr.serve.app import create_app\n"
        "c = TestClient(create_app(None))\n"
        f"r = c.post('/v1/recognize', files={{'file': open({str(cross_png)!r}, 'rb')}})\n"
        "print(r.status_code, r.json()['candidates'][0]['char'])\n"
        "print('torch' in sys.modules and sys.modules['torch'] is not None)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["十", "200", "十", "False"]


@pytest.mark.slow
def test_pip_install_without_extras_recognises_and_installs_no_torch(cross_png, tmp_path):
    """A fresh virtual environment, `pip install hccr` from this checkout (dependencies from PyPI)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pip = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", str(ROOT)], capture_output=True,
                         text=True, timeout=900, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if pip.returncode and ("NewConnectionError" in pip.stderr or "Could not fetch" in pip.stderr):
        pytest.skip(f"no package index reachable: {pip.stderr.strip().splitlines()[-1]}")
    assert pip.returncode == 0, pip.stderr
    has_torch = subprocess.run([venv / "bin" / "python", "-c", "import torch"], capture_output=True)
    assert has_torch.returncode != 0  # recognising pulled no PyTorch
    r = subprocess.run([venv / "bin" / "hccr", "predict", cross_png], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(":", 1)[1].split()[0] == "十"
