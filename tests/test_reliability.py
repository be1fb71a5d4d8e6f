"""One writer per output, bounded server memory, time limits on slow clients, and the small cases
an audit of hostile input found: each answered clearly, nothing lost."""

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, served
from PIL import Image

from hccr.data.store import Store, convert
from hccr.errors import HccrError
from hccr.utils import output_lock


def _pngs(folder, n=6, chars="一十"):
    """A labelled PNG export: <folder>/<char>/<k>.png."""
    for ch in chars:
        (folder / ch).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            img = np.full((40, 40), 255, np.uint8)
            img[18:22, 4 + k % 20 : 36] = 0
            if ch == "十":
                img[4:36, 18 + k % 3 : 22 + k % 3] = 0
            Image.fromarray(img).save(folder / ch / f"{k}.png")
    return folder


# ---------------------------------------------------------------------------------------------
# One writer per output

def test_a_second_writer_to_one_output_is_refused_with_the_holder_and_the_lock(tmp_path):
    out = tmp_path / "store"
    with output_lock(out, "store") as lock:
        with pytest.raises(HccrError) as e:
            convert([str(_pngs(tmp_path / "src"))], out, progress=False, workers=1)
        msg = str(e.value)
        assert f"process {os.getpid()}" in msg and str(lock) in msg and "delete" in msg
        assert not (out / "manifest.json").exists() and not out.with_name("store.partial").exists()
    # released with its holder, and its file removed (no hidden files left beside a user's outputs): the same
    # conversion now runs, and leaves none either
    assert not lock.exists()
    assert len(Store(convert([str(tmp_path / "src")], out, progress=False, workers=1).path)) == 12
    assert not lock.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["src", "store"]


def test_an_output_reached_through_a_symlink_has_the_same_lock(tmp_path):
    """A run folder and a symlink to it (``runs/latest``) are one output: a second writer is refused either way."""
    out = tmp_path / "store"
    out.mkdir()
    (tmp_path / "latest").symlink_to(out)
    with output_lock(out, "store"):
        with pytest.raises(HccrError, match="another hccr is writing"):
            with output_lock(tmp_path / "latest", "store"):
                pass


def test_convert_into_an_empty_folder_or_through_a_symlink(tmp_path):
    """``mkdir out && hccr convert src out`` and ``hccr convert src latest --overwrite`` (latest -> a run's store):
    both used to fail after the whole conversion ("appeared during conversion"; rmtree on a symbolic link)."""
    src = _pngs(tmp_path / "src")
    (empty := tmp_path / "empty").mkdir()
    assert len(Store(convert([str(src)], empty, progress=False, workers=1).path)) == 12
    (real := tmp_path / "real").mkdir()
    (link := tmp_path / "latest").symlink_to(real)
    convert([str(src)], link, progress=False, workers=1)
    r = run_cli("convert", src, link, "--limit", "5", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and len(Store(link)) == 5 and len(Store(real)) == 5


def test_a_holder_removes_only_its_own_lock_file(tmp_path):
    """A lock file deleted by hand (as the refusal message allows) lets a second run take a new one; the first run,
    finishing, must leave the second's file alone, or a third run could start beside the second."""
    out = tmp_path / "store"
    first = output_lock(out, "store")
    lock = first.__enter__()
    lock.unlink()  # a user, told the holder had died
    second = output_lock(out, "store")
    assert second.__enter__() == lock and lock.exists()
    first.__exit__(None, None, None)
    assert lock.exists()  # still the second's
    with pytest.raises(HccrError, match="another hccr is writing"):
        with output_lock(out, "store"):
            pass
    second.__exit__(None, None, None)
    assert not lock.exists()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    out = tmp_path / "store"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from hccr.utils import output_lock\n"
                               f"with output_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = run_cli("convert", _pngs(tmp_path / "src"), out)
        assert r.returncode == 2 and f"process {holder.pid}" in r.stderr and "Traceback" not in r.stderr
    finally:
        holder.kill()  # kill -9: no cleanup runs
        holder.wait()
    r = run_cli("convert", tmp_path / "src", out)
    assert r.returncode == 0, r.stderr
    assert len(Store(out)) == 12


@pytest.mark.parametrize("init", [True, False])
def test_a_killed_conversion_with_workers_frees_its_output_at_once(tmp_path, init):
    """kill -9 of a process whose pool workers are still busy: in hccr's process_pool (every pool of convert,
    synth, synth --fit and the component cutter) they drop the lock and die with it, so a resume right after is
    not refused; in a plain pool (the control) the orphaned workers keep the lock."""
    out = tmp_path / "store"
    pool = "process_pool(2)" if init else "mp.get_context('fork').Pool(2)"
    script = (
        "import multiprocessing as mp, os, time\n"
        "from hccr.utils import output_lock, process_pool\n"
        f"with output_lock({str(out)!r}):\n"
        f"    pool = {pool}\n"
        "    pool.map_async(time.sleep, [8, 8])  # the orphans of the control end by themselves\n"
        "    time.sleep(0.5)\n"
        "    print('busy', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "busy"
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.2)
    if init:
        with output_lock(out, "store"):
            pass  # taken at once
    else:
        with pytest.raises(HccrError, match="another hccr is writing"):
            with output_lock(out, "store"):
                pass


def test_two_conversions_at_once_never_report_success_on_a_corrupt_store(tmp_path):
    src = _pngs(tmp_path / "src", n=40)
    out = tmp_path / "store"
    cmd = [sys.executable, "-m", "hccr.cli", "convert", str(src), str(out), "--workers", "1"]
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in runs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2]  # one writes the store; the other is refused, whether it came during or after
    for rc, err in results:
        assert rc == 0 or "another hccr is writing this store" in err or "a store already exists" in err, err
    s = Store(out)
    assert len(s) == 80 and (np.asarray(s.images).reshape(80, -1).max(1) > 0).all()  # no all-zero image


# ---------------------------------------------------------------------------------------------
# Resumed conversions: damaged chunks, a full disk

def test_a_damaged_or_pickled_chunk_is_converted_again(tmp_path, monkeypatch, capsys):
    import hccr.data.store as store_mod

    src = _pngs(tmp_path / "src", n=3)
    out = tmp_path / "st"
    import hccr.data.sources as sources_mod

    monkeypatch.setattr(sources_mod, "IMAGES_PER_UNIT", 2)
    real = store_mod.run_unit
    calls = {"n": 0}

    def stop_at_third(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(store_mod, "run_unit", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        convert([str(src)], out, workers=1, progress=False)
    chunks = sorted((tmp_path / "st.partial" / "chunks").glob("*.npz"))
    assert len(chunks) == 2
    np.save(chunks[0].with_suffix(""), np.array([{"code": "evil"}], dtype=object))  # a pickled object array
    os.replace(chunks[0].with_suffix(".npy"), chunks[0])
    chunks[1].write_bytes(chunks[1].read_bytes()[:50])  # truncated
    monkeypatch.setattr(store_mod, "run_unit", real)
    res = convert([str(src)], out, workers=1, progress=False)
    err = capsys.readouterr().err
    assert err.count("is damaged") == 2 and "converting its unit again" in err
    assert len(Store(res.path)) == 6


def test_a_full_disk_leaves_no_half_written_chunk(tmp_path, monkeypatch):
    import hccr.data.store as store_mod

    src = _pngs(tmp_path / "src")
    real_savez = np.savez

    def disk_full(path, **arrays):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 half a chunk")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_mod.np, "savez", disk_full)
    with pytest.raises(HccrError, match="No space left on device"):
        convert([str(src)], tmp_path / "st", workers=1, progress=False)
    assert list((tmp_path / "st.partial" / "chunks").iterdir()) == []
    monkeypatch.setattr(store_mod.np, "savez", real_savez)
    assert len(Store(convert([str(src)], tmp_path / "st", workers=1, progress=False).path)) == 12


# ---------------------------------------------------------------------------------------------
# Small ones

def test_a_saved_model_is_as_readable_as_any_new_file(tmp_path):
    """Weights written through a temporary name get the mode the user's umask gives, like its .json beside
    them (the weights library creates private 0600 files: other users of a shared model folder could not load it)."""
    import torch

    from hccr.checkpoint import save_checkpoint

    mask = os.umask(0o022)
    os.umask(mask)
    j = save_checkpoint(tmp_path / "m", torch.nn.Linear(2, 2), {"note": "mode test"})
    modes = {p.suffix: p.stat().st_mode & 0o777 for p in (j, j.with_suffix(".safetensors"))}
    assert modes == {".json": 0o666 & ~mask, ".safetensors": 0o666 & ~mask}, modes


def test_a_long_charset_string_is_characters_not_a_path():
    from hccr.data.charset import gb2312_chars, resolve_charset

    vocabulary = "".join(gb2312_chars(True)[:300])  # a school's list: far longer than a file name may be
    assert len(resolve_charset(vocabulary)) == 300
    from hccr.data.charset import Charset
    from hccr.runtime import restrict_to

    probs = np.full((1, 400), 1 / 400, np.float32)
    out = restrict_to(probs, Charset(gb2312_chars(True)[:400]), vocabulary)
    assert (out[0, :300] > 0).all() and (out[0, 300:] == 0).all()


def test_blank_and_one_pixel_images_are_counted_as_unreadable_by_the_cli(tmp_path):
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(tmp_path / "blank.png")
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(tmp_path / "dot.png")
    ink = np.full((40, 40), 255, np.uint8)
    ink[18:22, 5:35] = 0
    Image.fromarray(ink).save(tmp_path / "one.png")
    r = run_cli("predict", tmp_path / "blank.png", tmp_path / "dot.png", tmp_path / "one.png", "--on-error", "skip")
    assert r.returncode == 0, r.stderr
    assert "blank image" in r.stderr + r.stdout and "too small to hold a character" in r.stderr + r.stdout
    assert "one.png" in r.stdout and "blank.png:" not in r.stdout.split("skipped")[0].split("\n", 1)[-1]
    r = run_cli("predict", tmp_path / "blank.png")
    assert r.returncode == 2 and "blank image" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------------------------
# The server

fastapi = pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def app_factory(tiny_run):
    from hccr.serve.app import Limits, create_app

    return lambda **kw: create_app(str(tiny_run), Limits(**kw))


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_stroke_coordinates_of_hundreds_of_digits_are_a_422(app_factory):
    from fastapi.testclient import TestClient

    client = TestClient(app_factory())
    for digits in (400, 5000):
        body = '{"strokes": [[[1' + "0" * digits + ', 5], [20, 30]]]}'
        r = client.post("/v1/recognize", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422 and "error" in r.json(), (digits, r.text)


def test_the_memory_budget_is_shared_and_refusals_say_when_to_retry(app_factory):
    from fastapi.testclient import TestClient

    from hccr.serve.app import Budget

    b = Budget(nbytes=1000, pixels=100)
    with b.claim() as take:
        take("bytes", 600)
        with b.claim() as other, pytest.raises(Exception, match="busy"):
            other("bytes", 600)  # the two requests together would not fit
        assert b.used["bytes"] == 600
    assert b.used == {"bytes": 0, "pixels": 0}  # everything given back

    img = np.full((300, 300), 255, np.uint8)
    img[140:160, 20:280] = 0
    client = TestClient(app_factory(budget_pixels=200 * 200))
    r = client.post("/v1/recognize", content=_png(img), headers={"content-type": "image/png"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "busy" in r.json()["error"]
    client = TestClient(app_factory(budget_bytes=500))
    r = client.post("/v1/recognize", content=_png(img), headers={"content-type": "image/png"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    client = TestClient(app_factory(max_batch_pixels=250 * 250))  # the batch's pixels are capped as a whole
    files = [("file", (f"{i}.png", _png(img), "image/png")) for i in range(3)]
    r = client.post("/v1/recognize/batch", files=files)
    assert r.status_code == 413 and "pixels" in r.json()["error"]
    r = client.post("/v1/recognize/batch", files=files[:1][:0] + [("file", ("s.png", _png(img[:200, :200]), "image/png"))])
    assert r.status_code == 200 and r.json()["results"][0]["candidates"]


def _serve(app_factory, **limits):
    import uvicorn

    from hccr.serve.app import Limits, server_config

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(server_config(app_factory(**limits), "127.0.0.1", port, Limits(**limits), "error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    return server, thread, port


def _closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it is still open."""
    sock.settimeout(seconds)
    got = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return got
            got += chunk
    except TimeoutError:
        return None


def test_requests_still_sending_their_body_count_against_the_queue(app_factory):
    """workers + queue bounds every admitted request, also those still reading their body (they held memory
    budget and a connection but were not counted: the queue limit was not enforced)."""
    server, thread, port = _serve(app_factory, workers=1, queue=1, body_timeout=5.0)
    png = _png(np.pad(np.zeros((20, 4), np.uint8), 10, constant_values=255))
    slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        for s in slow:  # two uploads whose bodies have not arrived: the one worker and the one queue place
            s.sendall(b"POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(png) + png[:8])
        time.sleep(0.5)
        third = socket.create_connection(("127.0.0.1", port))
        third.sendall(b"POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                      b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(png) + png)
        answer = _closed_within(third, 5.0) or b""
        assert b" 503 " in answer.split(b"\r\n")[0] and b"retry-after" in answer.lower(), answer[:200]
        for s in slow:  # the admitted ones finish and are answered
            s.settimeout(10)
            s.sendall(png[8:])
        assert all(b" 200 " in (s.recv(4096).split(b"\r\n")[0]) for s in slow)
        again = socket.create_connection(("127.0.0.1", port))  # and their places are free again
        again.sendall(b"POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                      b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(png) + png)
        assert b" 200 " in (_closed_within(again, 5.0) or b"").split(b"\r\n")[0]
    finally:
        for s in slow:
            s.close()
        server.should_exit = True
        thread.join(timeout=10)


def test_slow_headers_slow_bodies_and_idle_connections_are_closed(app_factory):
    server, thread, port = _serve(app_factory, header_timeout=1.0, body_timeout=1.0, keep_alive=1.0)
    try:
        slow = socket.create_connection(("127.0.0.1", port))
        for part in (b"POST /v1/recognize HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n"):  # a byte now and then
            slow.sendall(part)
            time.sleep(0.4)
        assert _closed_within(slow, 3.0) is not None  # the headers took too long: closed

        body = socket.create_connection(("127.0.0.1", port))
        body.sendall(b"POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                     b"Content-Length: 1000\r\n\r\n" + b"\x89PNG")
        answer = _closed_within(body, 4.0)
        assert answer is not None and b" 408 " in answer.split(b"\r\n")[0]  # answered, then closed

        idle = socket.create_connection(("127.0.0.1", port))
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = _closed_within(idle, 4.0)
        assert answer is not None and b" 200 " in answer.split(b"\r\n")[0]  # kept alive, then let go

        fine = socket.create_connection(("127.0.0.1", port))  # a normal client is not hurried
        fine.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert b'"status":"ok"' in (_closed_within(fine, 4.0) or b"")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_server_process_gives_back_what_a_large_batch_took(tiny_run, tmp_path):
    """One process, real requests: batches of large, highly compressible images are refused as a whole
    when over the batch's pixel cap, and decoding within it does not leave the server at its peak."""
    import httpx

    with served(tiny_run) as (url, proc):
        def rss(field: str) -> int:  # kB
            return int(next(ln for ln in open(f"/proc/{proc.pid}/status") if ln.startswith(field)).split()[1])

        base = rss("VmRSS")  # the model loaded, nothing decoded yet
        big = np.full((3000, 3000), 255, np.uint8)
        big[1400:1600, 300:2700] = 0
        payload = _png(big)  # a few KB that decode to 9 M pixels
        files = [("file", (f"{i}.png", payload, "image/png")) for i in range(64)]
        r = httpx.post(f"{url}/v1/recognize/batch", files=files, timeout=120)
        assert r.status_code == 413 and "pixels" in r.json()["error"]  # 576 M pixels: refused before decoding
        for _ in range(3):
            r = httpx.post(f"{url}/v1/recognize/batch", files=files[:3], timeout=120)
            assert r.status_code == 200 and len(r.json()["results"]) == 3
        peak, now = rss("VmHWM"), rss("VmRSS")
        assert peak < 1_000_000, f"peak {peak / 1e3:.0f} MB"
        # measured here: 281 MB loaded, 452 MB at the peak of the batches, 286 MB after them
        assert peak - base > 50_000, (base, peak)  # the batches' images were decoded: there was a peak
        assert now - base < (peak - base) / 2, (base, peak, now)  # and most of it was given back


def test_checkpoint_json_temperature_must_be_sane_when_written(tiny_run, tmp_path):
    import shutil

    from hccr.packaging import write_temperature

    d = tmp_path / "run"
    shutil.copytree(tiny_run, d)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(HccrError, match="temperature"):
            write_temperature(d / "best.json", bad, {})
    assert "calibration" not in json.loads((d / "best.json").read_text())


@pytest.mark.slow
def test_ctrl_c_says_what_was_kept_and_no_worker_prints_a_traceback(tmp_path):
    """Ctrl-C reaches the terminal's whole foreground group: the command and its pool workers. The user reads one
    line (and exit status 130), not Typer's silence or a traceback from each worker."""
    import signal

    out = tmp_path / "synth"
    cmd = [sys.executable, "-m", "hccr.cli", "synth", str(out), "--chars", "一二三四五六七八九十", "--writers", "3000",
           "--workers", "2"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (out.exists() and any(out.glob("*.gnt"))) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()[1]  # still running: the test interrupts it
    os.killpg(p.pid, signal.SIGINT)  # as a terminal does
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in err and "--resume" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_pool_workers_leave_ctrl_c_to_their_parent():
    """The end-to-end test above races a worker's traceback against the pool's shutdown; this is the cause, read
    directly: in hccr's pools a worker ignores SIGINT (the parent, interrupted, stops the pool)."""
    import signal

    from hccr.utils import process_pool

    with process_pool(1) as pool:
        assert pool.apply(signal.getsignal, (signal.SIGINT,)) == signal.SIG_IGN


# ---------------------------------------------------------------------------------------------
# A full disk, and a package that cannot be finished

def test_a_full_disk_under_torch_or_safetensors_is_named_as_one(tmp_path):
    """torch, writing to a file object, raises its own RuntimeError over the system's OSError; safetensors quotes
    it ("... (os error 28)"): either becomes the user's file and the system's error (main prints it in one line), and
    no working file is left. Any other error passes as it is, an hccr error too."""
    import errno

    from hccr.utils import atomic_path

    out = tmp_path / "best.safetensors"
    with pytest.raises(OSError) as e:
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"x")
            raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(out)
    with pytest.raises(OSError) as e:
        with atomic_path(out) as tmp:
            try:
                raise OSError(errno.EDQUOT, "Disk quota exceeded")
            except OSError:
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None
    assert e.value.errno == errno.EDQUOT and e.value.filename == str(out)
    with pytest.raises(OSError) as e:  # a nameless write error (a full disk under Python's own file)
        with atomic_path(out) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device")
    assert e.value.filename == str(out)
    with pytest.raises(OSError, match="^cannot identify image$"):  # no system error: its message kept
        with atomic_path(out) as tmp:
            raise OSError("cannot identify image")
    with pytest.raises(RuntimeError, match="a bug"):
        with atomic_path(out) as tmp:
            raise RuntimeError("a bug")
    with pytest.raises(HccrError, match="not an hccr checkpoint"):
        with atomic_path(out) as tmp:
            raise HccrError("m.json: not an hccr checkpoint (os error 28)")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_package_that_fails_half_way_leaves_no_half_model_and_keeps_the_old_one(tiny_run, tmp_path, monkeypatch):
    import hccr.export as export
    from hccr.packaging import package

    first = package(tiny_run, tmp_path / "m")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["m.json", "m.onnx", "m.safetensors"]

    def fail(*a, **k):
        raise OSError(28, "No space left on device", str(a[1]))

    monkeypatch.setattr(export, "export_onnx", fail)
    with pytest.raises(OSError) as e:
        package(tiny_run, tmp_path / "m", provenance={"note": "second"})
    assert e.value.filename == str(tmp_path / "m.onnx")  # the user's name, not the hidden working one
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # the old model, whole; nothing else
    with pytest.raises(OSError):
        package(tiny_run, tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)
    assert first[0].exists()


def test_a_dot_in_a_models_name_is_no_suffix_for_overwrite_checks_or_removals(tiny_run, tmp_path):
    """``--out m-p0.5`` names m-p0.5.json/.onnx: a second package is refused, and an average replacing it removes
    m-p0.5.onnx, never another model's m-p0.onnx (the checks read "m-p0.json" and the removal hit "m-p0.onnx")."""
    stem = tmp_path / "m-p0.5"
    assert run_cli("package", tiny_run, "--out", stem).returncode == 0
    (other := tmp_path / "m-p0.onnx").write_bytes(b"another model's export")
    r = run_cli("package", tiny_run, "--out", stem)
    assert r.returncode == 2 and "already packaged" in r.stderr
    r = run_cli("average", tiny_run, tiny_run, "--out", stem)
    assert r.returncode == 2 and "--overwrite" in r.stderr
    r = run_cli("average", tiny_run, tiny_run, "--out", stem, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert other.read_bytes() == b"another model's export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-p0.5.json", "m-p0.5.safetensors", "m-p0.onnx"]


def test_a_calibration_that_fails_half_way_changes_neither_file_of_a_package(tiny_run, tmp_path, monkeypatch):
    """A packaged model's .json and .onnx carry one temperature: a failure while writing the second leaves both as
    they were (the first used to be written already: two temperatures for one model)."""
    import onnx

    from hccr.packaging import package, write_temperature

    json_path, onnx_path = package(tiny_run, tmp_path / "m")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    write_bytes = Path.write_bytes

    def full(self, data):  # the disk fills while the .onnx file is written, after the .json
        if ".onnx" in self.name:
            raise OSError(28, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError) as e:
        write_temperature(json_path, 1.7, {"note": "test"})
    assert e.value.filename == str(onnx_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    monkeypatch.undo()
    assert write_temperature(json_path, 1.7, {}) == [json_path, onnx_path]
    assert json.loads(json_path.read_text())["calibration"]["temperature"] == 1.7
    assert {e.key: e.value for e in onnx.load(str(onnx_path)).metadata_props}["temperature"] == "1.7"


def test_ctrl_c_stops_the_server_without_talk_of_resuming(tiny_run):
    """The server has nothing to resume: Ctrl-C shuts it down as uvicorn does, without the line the writing commands
    print (uvicorn puts hccr's handler back and raises the signal again once it has shut down)."""
    import signal

    with served(tiny_run) as (url, proc):
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        proc.log.seek(0)
        err = proc.log.read()
    assert "Shutting down" in err or "shutdown" in err.lower(), err
    assert "--resume" not in err and "Traceback" not in err, err


def test_convert_onto_a_mount_point_is_refused_before_converting(tmp_path, monkeypatch):
    """A freshly mounted disk as OUT: the store is made beside it and renamed onto it, which the system refuses
    (EBUSY) after the whole conversion; said first, with a folder inside it to give instead."""
    out = tmp_path / "disk"
    out.mkdir()
    monkeypatch.setattr(os.path, "ismount", lambda p: str(p) == str(out))
    with pytest.raises(HccrError, match="is a mount point; give a folder inside it"):
        convert([str(_pngs(tmp_path / "src"))], out, progress=False, workers=1)
    assert not (tmp_path / "disk.partial").exists()


def test_evaluate_onto_a_full_disk_leaves_no_empty_report_folder(tmp_path, monkeypatch):
    from hccr.evaluate import predict_labelled
    from hccr.runtime import Predictions

    def full(self, path, **k):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(Predictions, "save", full)
    with pytest.raises(OSError, match="No space left"):
        predict_labelled([_pngs(tmp_path / "src")], "gb2312", tmp_path / "report", crops=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped): what a ``kill -9`` leaves in a working file's name."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_working_files_a_killed_writer_left_are_removed_by_the_next_write(tiny_run, tmp_path):
    """``kill -9`` of package/average/predict leaves its hidden working files (``.m.partial-PID.onnx``, the export's
    own ``..m.partial-PID.onnx.tmp-PID`` inside it, ``.x.npz.tmp-PID``); the next write of the same output removes
    them once their process is gone and they have not changed for a minute, and never a running writer's, one written
    a moment ago, or anything else whose name merely starts the same (a user's file, a link)."""
    from hccr.packaging import package
    from hccr.utils import atomic_path

    dead, alive, old = _dead_pid(), os.getppid(), time.time() - 600
    left = [tmp_path / f".m.partial-{dead}.onnx", tmp_path / f".m.partial-{dead}.safetensors",
            tmp_path / f"..m.partial-{dead}.onnx.tmp-{dead}", tmp_path / f".x.npz.tmp-{dead}"]
    kept = [tmp_path / f".m.partial-{alive}.json", tmp_path / f".x.npz.tmp-{alive}",  # running writers'
            tmp_path / f".x.npz.tmp-{dead}1",  # written a moment ago
            tmp_path / f".x.npz.tmp-{dead}-notes.txt", tmp_path / ".x.npz.tmp-99999999999",  # not working files
            tmp_path / f".m.partial-{dead}.onnx.bak"]
    for f in left + kept:
        f.write_bytes(b"half a file")
        os.utime(f, (old, old))
    os.utime(kept[2])
    (link := tmp_path / f".x.npz.tmp-{dead}0").symlink_to(tmp_path / "nowhere")
    package(tiny_run, tmp_path / "m")
    with atomic_path(tmp_path / "x.npz") as tmp:
        tmp.write_bytes(b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.json", "m.onnx", "m.safetensors", "x.npz"]
                                                                + [f.name for f in kept] + [link.name])


def test_outputs_whose_names_are_near_the_systems_limit_are_written(tiny_run, tmp_path):
    """A legal name of 241-255 bytes used to fail with "File name too long" for its hidden working file's name."""
    long = "字" * 80  # 240 bytes in UTF-8
    src = _pngs(tmp_path / "src")
    store = tmp_path / (long + "0123456789")  # 250 bytes: OUT.partial, where it is made, would be 258
    r = run_cli("convert", src, store)
    assert r.returncode == 0, r.stderr
    r = run_cli("predict", tiny_run, src, "--out", tmp_path / (long + "x.npz"))
    assert r.returncode == 0, r.stderr
    r = run_cli("package", tiny_run, "--out", tmp_path / "p" / long[:78])  # + ".safetensors": 246 bytes
    assert r.returncode == 0, r.stderr
    assert (store / "manifest.json").is_file() and (tmp_path / (long + "x.npz")).is_file()
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [long[:78] + s for s in (".json", ".onnx",
                                                                                          ".safetensors")]
    assert not [p for p in tmp_path.rglob(".*")]  # no working file or lock left


@pytest.mark.parametrize("failing", [".json", ".safetensors"])
def test_a_checkpoint_write_that_fails_keeps_the_old_pair_whole(tmp_path, monkeypatch, failing):
    """A run's best checkpoint being replaced when the disk fills at either of its files: the old weights and .json
    stay together and load (new weights used to be in place before the .json was written, and a failure there left
    the old .json's digest calling them damaged)."""
    import torch

    import hccr.checkpoint as ck
    from hccr.models import create_model

    meta = {"arch": "charnet-s", "charset": "一二", "preprocessing": {"image_size": 32, "ink": "high"},
            "model_args": {"num_classes": 2, "image_size": 32, "widths": [8, 8, 8, 8]}}
    torch.manual_seed(0)
    first = create_model("charnet-s", num_classes=2, image_size=32, widths=(8, 8, 8, 8)).eval()
    ck.save_checkpoint(tmp_path / "best", first, meta)
    write = Path.write_bytes

    def full(self, data):
        if f"{failing}.tmp-" in self.name:
            raise OSError(28, "No space left on device", str(self))
        return write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    second = create_model("charnet-s", num_classes=2, image_size=32, widths=(8, 8, 8, 8)).eval()
    with pytest.raises(OSError, match="No space left") as e:
        ck.save_checkpoint(tmp_path / "best", second, meta)
    assert e.value.filename == str(tmp_path / f"best{failing}")
    loaded, _ = ck.load_checkpoint(tmp_path / "best.json")
    x = torch.rand(1, 1, 32, 32)
    torch.testing.assert_close(loaded(x), first(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "best.safetensors"]


def test_ctrl_c_is_held_back_even_when_another_thread_receives_it():
    """torch runs threads of its own, and the kernel may hand Ctrl-C to any of them: a step that must not be cut
    in two (a model's renames) still runs to its end, and the interrupt comes after it."""
    import signal

    from hccr.utils import no_interrupt

    ready, done = threading.Event(), []
    helper = threading.Thread(target=ready.wait, daemon=True)  # one more thread, SIGINT not blocked in it
    helper.start()
    with pytest.raises(KeyboardInterrupt):
        with no_interrupt():
            signal.pthread_kill(helper.ident, signal.SIGINT)  # the kernel's choice of thread, made for it
            for _ in range(200):  # the handler would have run by now, between these bytecodes
                time.sleep(0.001)
            done.append("whole")
    ready.set()
    assert done == ["whole"]


def test_export_replaces_an_onnx_file_only_with_overwrite(tiny_run, tmp_path):
    out = tmp_path / "m.onnx"
    assert run_cli("export", tiny_run, "--out", out, "--crops", "1", "--int8").returncode == 0
    before = out.read_bytes()
    r = run_cli("export", tiny_run, "--out", out)
    assert r.returncode == 2 and f"{out}: already exists" in r.stderr and "--overwrite" in r.stderr
    assert out.read_bytes() == before
    r = run_cli("export", tiny_run, "--out", out, "--overwrite")  # five crops now; the old int8 copy goes with it
    assert r.returncode == 0 and out.read_bytes() != before, r.stderr
    assert not (tmp_path / "m.int8.onnx").exists() and "removed" in r.stdout
    # a packaged model's graph is not replaced alone, --overwrite or not: its .json and weights would not match it
    assert run_cli("package", tiny_run, "--out", tmp_path / "p").returncode == 0
    graph = (tmp_path / "p.onnx").read_bytes()
    r = run_cli("export", tiny_run, "--out", tmp_path / "p.onnx", "--overwrite")
    assert r.returncode == 2 and "the graph of the model packaged as" in r.stderr and "p.json" in r.stderr
    assert (tmp_path / "p.onnx").read_bytes() == graph
    (folder := tmp_path / "d.onnx").mkdir()
    r = run_cli("export", tiny_run, "--out", folder, "--overwrite")
    assert r.returncode == 2 and "is a folder" in r.stderr and "--overwrite replaces" not in r.stderr
