"""Data-parallel training (scratchgan.app.distributed, ``train --distributed``; docs/distributed.md).

The tests that need MPI start ``mpiexec -n 2`` in a subprocess and skip, with
the reason, when mpi4py or mpiexec is missing (``pip install
"scratchgan[mpi]"`` brings both; ``.ci/run`` installs it). The ranks' side is
``tests/distributed_worker.py``.

Equivalence tolerance: 2 ranks with global batch B and one process with batch
B draw the same numbers and compute the same gradients, except that each
gradient's sum over the batch is split into two partial sums added by the
allreduce (and each rank's matrix products see half the rows, which may change
the BLAS kernel's blocking). Every such reordering moves a result by about one
rounding (1e-16 relative in float64); a few steps of the GAN dynamics amplify
it (Adam divides by the root of small second moments; WGAN-GP differentiates
twice). Measured, as the largest difference of an array over its largest value:
2e-16 (SGD, hinge), 1e-15 to 2e-14 (Adam: the toy recipe, RSGAN, ACGAN,
InfoGAN), 1e-12 (WGAN-GP with packs and 2 critic steps). The tests allow 1e-10:
a hundred times the largest of these, and far below what a real mistake gives
(measured on these cases: a sum instead of a mean, rank 1 training on rank 0's
share, or no broadcast at start move some weights by 4e-4 to 2 of their scale).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

import scratchgan as sg
from scratchgan.app.checkpoint import load_checkpoint
from scratchgan.app.cli import main
from scratchgan.app.config import ConfigError, TrainConfig
from scratchgan.app.distributed import Communicator, DistributedError, _gpu_identity, _gpu_sharing_problem, local_shares, local_slices
from scratchgan.app.train import RUN_FILES, Trainer

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import distributed_worker as worker  # noqa: E402

RTOL = 1e-10
WORKER = TESTS / "distributed_worker.py"
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(not (HAVE_MPI4PY and MPIEXEC),
                               reason="needs mpi4py and mpiexec: pip install \"scratchgan[mpi]\" (mpi4py and the mpich "
                                      "wheel); .ci/run installs it")
#: one BLAS thread per rank (two ranks on two cores); the scratchgan command next to this Python
#: (absolute: a relative PYTHONPATH, such as the stand-in pass's tests/cupy_standin, holds in any folder)
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(TESTS.parent)] + [os.path.abspath(p) for p in
                                                            os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
SCRATCHGAN = [sys.executable, "-m", "scratchgan.app.cli"]
TIMEOUT = 240  # generous: a hang (a rank left waiting) is what several of these tests must not see


def mpirun(*args, n: int = 2, timeout: float = TIMEOUT, cwd=None, env=None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([MPIEXEC, "-n", str(n), *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env={**ENV, **(env or {})}, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mpiexec did not finish in {timeout} s (a rank left waiting?): {exc.stderr}")


def assert_close(got: dict, want: dict, rtol: float = RTOL) -> None:
    """Every array of ``want`` in ``got`` within ``rtol`` of the array's largest value (see the module docstring)."""
    for key, w in want.items():
        if key == "digests":
            continue
        g = got[key]
        assert g.shape == w.shape, key
        scale = max(float(np.abs(w).max()), 1e-300)
        err = float(np.abs(g - w).max()) / scale
        assert err <= rtol, f"{key}: 2 ranks and one process differ by {err:.2e} of its largest value"


def reference(name: str, folder: Path, **changes) -> dict:
    """What one process with the same config and seed trains (on the GPU with ``backend="cupy"``)."""
    try:
        trainer = Trainer(worker.case_config(name, **changes), folder / f"ref-{name}")
        return worker.train_case(trainer, worker.CASES[name][1])
    finally:
        sg.set_backend("numpy")


# --------------------------------------------------------------------------- without MPI


def test_local_slices_split_the_global_batch_into_equal_shares_of_whole_packs():
    shares = [local_slices(12, 2, r, 3) for r in range(3)]
    rows = np.concatenate([np.arange(12)[s] for s, _ in shares])
    packs = np.concatenate([np.arange(6)[p] for _, p in shares])
    assert rows.tolist() == list(range(12)) and packs.tolist() == list(range(6))
    for s, p in shares:  # a rank's packs are exactly its rows, two by two
        assert np.arange(12)[s].reshape(-1, 2)[:, 0].tolist() == (2 * np.arange(6)[p]).tolist()
    assert local_slices(8) == (slice(0, 8), slice(0, 8))


def test_batch_that_does_not_split_over_the_ranks_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"--batch-size 100 .*divisible by 3 \(e\.g\. 99 or 102\)"):
        local_slices(100, 1, 0, 3)
    with pytest.raises(ConfigError, match=r"2 ranks x pack 4 = 8"):
        local_slices(20, 4, 1, 2)


def test_options_that_cannot_split_exactly_are_refused_on_several_ranks_only(tmp_path):
    from scratchgan.app.config import resolve  # noqa: PLC0415

    config = resolve(TrainConfig(loss="rasgan", batch_size=16))
    with pytest.raises(ConfigError, match="--loss rasgan cannot be trained data-parallel: .*rsgan .*splits exactly"):
        local_shares(config, 0, 2)
    assert local_shares(config, 0, 1) == (slice(0, 16), slice(0, 16))
    with pytest.raises(ConfigError, match="--dragan cannot be trained data-parallel: .*standard deviation of the"):
        local_shares(resolve(TrainConfig(dragan=1.0, batch_size=16)), 1, 2)
    assert local_shares(resolve(TrainConfig(loss="rsgan", batch_size=16)), 1, 2) == (slice(8, 16), slice(8, 16))


def test_without_mpi4py_the_error_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # what a missing package looks like to import
    with pytest.raises(DistributedError, match=r'pip install "scratchgan\[mpi\]"'):
        Communicator()
    assert main(["train", "--distributed", "--steps", "2", "--out", "unused"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "scratchgan[mpi]"' in err and "mpiexec -n N" in err


def test_one_process_never_imports_mpi4py(tmp_path):
    code = ("import sys\nfrom scratchgan.app.cli import main\n"
            f"assert main(['train', '--steps', '3', '--batch-size', '8', '--eval-samples', '50', '--quiet', "
            f"'--out', {str(tmp_path / 'run')!r}]) == 0\n"
            "assert 'mpi4py' not in sys.modules, 'a one-process run imported mpi4py'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, env=ENV)
    assert done.returncode == 0, done.stderr


class OneRank:
    """A communicator of one rank without MPI: the trainer's data-parallel path with nothing to exchange."""

    rank, size, transport = 0, 1, "none"

    def allreduce_gradients(self, params, record=None):
        return record

    def bcast_object(self, obj, root=0):
        return obj

    def any(self, flag):
        return bool(flag)

    def check_parameters_agree(self, *modules):
        pass


def test_the_data_parallel_path_on_one_rank_is_bitwise_the_one_process_run(tmp_path):
    config = worker.case_config("wgan-gp-pack", steps=3, checkpoint_every=2)
    alone, one_rank = Trainer(config, tmp_path / "alone"), Trainer(config, tmp_path / "one-rank", comm=OneRank())
    assert alone.run(progress=False) == one_rank.run(progress=False)
    a = load_checkpoint(tmp_path / "alone" / "checkpoint.npz")
    b = load_checkpoint(tmp_path / "one-rank" / "checkpoint.npz")
    for net in ("G", "D"):
        for k in a[net]:
            assert np.array_equal(a[net][k], b[net][k]), (net, k)


# --------------------------------------------------------------------------- 2 ranks


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """One ``mpiexec -n 2`` run of the worker's suite: collectives, the equivalence cases, a whole run."""
    if not (HAVE_MPI4PY and MPIEXEC):
        pytest.skip("needs mpi4py and mpiexec: pip install \"scratchgan[mpi]\"")
    out = tmp_path_factory.mktemp("suite")
    done = mpirun(sys.executable, WORKER, "suite", out)
    # each test reads what it needs: a suite that stopped early fails the tests whose files are missing, with this
    paths = [out / f"rank{r}.json" for r in range(2)]
    if done.returncode != 0 or not all(p.is_file() for p in paths):
        return out, None, done.stdout + done.stderr
    return out, [json.loads(p.read_text()) for p in paths], ""


def _ranks(suite) -> list:
    _, ranks, why = suite
    assert ranks is not None, f"the 2-rank suite stopped early:\n{why}"
    return ranks


@needs_mpi
def test_allreduce_averages_every_gradient_and_the_record_in_one_buffer(suite):
    ranks = _ranks(suite)
    for found in ranks:
        c = found["collectives"]
        assert c["mean_a"] == (np.arange(6.0).reshape(2, 3) * 1.5).tolist()  # (1x + 2x) / 2
        assert c["mean_b"] == [5.0] * 4  # (0 + 10) / 2
        assert c["skipped_grad"]  # a parameter without a gradient is left out, and keeps none
        assert c["record"] == {"loss": 0.5, "name": "kept"}
        assert c["calls"] == 1 and c["bytes"] == (6 + 4 + 1) * 8  # one float64 buffer: 10 gradients + 1 loss
        assert c["any"] == [True, False]
        assert c["device_record"] == ["Tensor", 1.0, 3.0]  # (0 + 2) / 2, left a Tensor; a number becomes a float


@needs_mpi
def test_broadcast_gives_every_rank_rank_0s_weights_buffers_and_optimizer_state(suite):
    r0, r1 = _ranks(suite)
    for key in ("weights", "running_mean", "lr", "exp_avg"):
        assert r0["collectives"][key] == r1["collectives"][key], key
    assert r0["collectives"]["lr"] == 1e-3  # rank 0's (rank 1 had 2e-3)


@needs_mpi
def test_ranks_hold_bitwise_the_same_parameters_after_every_step(suite):
    r0, r1 = _ranks(suite)
    for name, steps in ((name, steps) for name, (_, steps) in worker.CASES.items()):
        assert len(r0["digests"][name]) == steps
        assert r0["digests"][name] == r1["digests"][name], name
    # and the check that the trainer runs at every checkpoint sees a difference, naming the rank
    assert r0["collectives"]["disagreement"] == r1["collectives"]["disagreement"]
    assert "rank(s) [1] differ from rank 0's" in r0["collectives"]["disagreement"]


@needs_mpi
@pytest.mark.parametrize("name", list(worker.CASES))
def test_two_ranks_take_the_steps_of_one_process_with_the_whole_batch(suite, name, tmp_path):
    out, _, why = suite
    want = reference(name, tmp_path)
    for rank in range(2):  # rank 1 started from other weights: the start-up broadcast made them rank 0's
        assert (out / f"{name}-rank{rank}.npz").is_file(), f"the 2-rank suite stopped early:\n{why}"
        with np.load(out / f"{name}-rank{rank}.npz") as got:
            assert_close(dict(got), want)


@needs_mpi
def test_only_rank_0_writes_the_run_folder_and_every_rank_returns_its_evaluation(suite):
    out = suite[0]
    r0, r1 = _ranks(suite)
    assert sorted(p.name for p in (out / "run").iterdir()) == sorted(RUN_FILES)
    assert not (out / "run-of-rank-1-never-written").exists()
    assert r0["run_result"] == r1["run_result"] and r0["run_result"]["step"] == 3 == r1["run_step"]
    assert len((out / "run" / "metrics.jsonl").read_text().splitlines()) == 3


def _checkpoint(folder: Path) -> dict:
    tree = load_checkpoint(folder / "checkpoint.npz")
    return {f"{net}/{k}": v for net in ("G", "D", "G_ema") if net in tree for k, v in tree[net].items()}


@needs_mpi
def test_command_trains_on_two_ranks_writes_one_run_folder_and_resumes_on_any_number(tmp_path):
    args = ["train", "--distributed", "--dtype", "float64", "--batch-size", "16", "--lr-decay-steps", "4",
            "--log-every", "1", "--checkpoint-every", "2", "--eval-samples", "100", "--quiet"]
    straight = mpirun(*SCRATCHGAN, *args, "--steps", "4", "--out", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    assert "batch 16 (2 ranks of 8, mpi)" in straight.stdout and straight.stdout.count("plan:") == 1
    assert sorted(p.name for p in (tmp_path / "straight").iterdir()) == sorted(RUN_FILES)
    half = mpirun(*SCRATCHGAN, *args, "--steps", "2", "--out", tmp_path / "two")
    assert half.returncode == 0, half.stderr
    shutil.copytree(tmp_path / "two", tmp_path / "one")
    # the same number of ranks: bitwise the straight run
    resumed = mpirun(*SCRATCHGAN, *args, "--steps", "4", "--resume", "--out", tmp_path / "two")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "at step 2 of 4" in resumed.stdout
    want = _checkpoint(tmp_path / "straight")
    got = _checkpoint(tmp_path / "two")
    assert all(np.array_equal(got[k], want[k]) for k in want)
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
    # one process continues the 2-rank run: the batches do not depend on the number of ranks
    assert main(["train", "--resume", "--out", str(tmp_path / "one"), "--steps", "4", "--quiet"]) == 0
    assert_close(_checkpoint(tmp_path / "one"), want)


@needs_mpi
def test_batch_size_that_does_not_divide_by_the_ranks_is_one_line_from_rank_0(tmp_path):
    done = mpirun(*SCRATCHGAN, "train", "--distributed", "--batch-size", "15", "--out", tmp_path / "run")
    assert done.returncode == 2
    assert done.stderr.count("error") == 1 and "--batch-size 15 is the global batch" in done.stderr
    assert "divisible by 2 (e.g. 14 or 16)" in done.stderr
    assert not (tmp_path / "run").exists()


@needs_mpi
def test_refusals_before_training_are_rank_0s_one_line_and_every_rank_stops(tmp_path):
    (tmp_path / "empty").mkdir()
    done = mpirun(*SCRATCHGAN, "train", "--distributed", "--resume", "--out", tmp_path / "empty")
    assert done.returncode == 1
    assert done.stderr.count("scratchgan: error: nothing to resume in") == 1 and done.stderr.count("\n") == 1
    (tmp_path / "taken" / "eval.json").parent.mkdir()
    (tmp_path / "taken" / "eval.json").write_text("{}")
    done = mpirun(*SCRATCHGAN, "train", "--distributed", "--out", tmp_path / "taken")
    assert done.returncode == 2
    assert done.stderr.count("already holds a run") == 1 and done.stderr.count("\n") == 1


@needs_mpi
def test_a_rank_that_raises_stops_every_rank_with_its_message(tmp_path):
    start = time.perf_counter()
    done = mpirun(sys.executable, WORKER, "die", tmp_path)
    assert done.returncode != 0
    assert "rank 1 fails on purpose at step 2" in done.stderr
    assert "rank 1 of 2 stopped on RuntimeError; aborting every rank (MPI_Abort)" in done.stderr
    assert time.perf_counter() - start < TIMEOUT


@needs_mpi
def test_a_rank_that_fails_under_the_command_stops_every_rank_in_one_line(tmp_path):
    code = ("import sys\nfrom mpi4py import MPI\nimport scratchgan.app.train as T\n"
            "if MPI.COMM_WORLD.Get_rank() == 1:\n"
            "    original = T.Trainer.g_update\n"
            "    def g_update(self):\n"
            "        if self.step == 2:\n"
            "            raise OSError('disk of rank 1 gone')\n"
            "        return original(self)\n"
            "    T.Trainer.g_update = g_update\n"
            "from scratchgan.app.cli import main\n"
            f"sys.exit(main(['train', '--distributed', '--steps', '50', '--batch-size', '16', '--quiet', "
            f"'--out', {str(tmp_path / 'run')!r}]))\n")
    done = mpirun(sys.executable, "-c", code)
    assert done.returncode != 0
    assert "scratchgan: error (rank 1 of 2): disk of rank 1 gone; stopping all 2 ranks" in done.stderr
    assert "Traceback" not in done.stderr


@needs_mpi
def test_ranks_started_with_other_options_stop_with_a_message_naming_them(tmp_path):
    done = mpirun(sys.executable, WORKER, "mismatch", tmp_path)
    assert done.returncode != 0
    assert "rank 1 was started with other options than rank 0: lr_g 0.001 here, 0.002 on rank 0" in done.stderr


def _rank_pid(mpiexec_pid: int, rank: int) -> int | None:
    """The pid of rank ``rank`` of the job that ``mpiexec_pid`` started (Linux: /proc, PMI_RANK)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _descends(int(entry.name), mpiexec_pid):
            try:
                if f"PMI_RANK={rank}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                    return int(entry.name)
            except OSError:
                continue
    return None


def _descends(pid: int, ancestor: int) -> bool:
    for _ in range(8):
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
    return False


@needs_mpi
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks' pids in /proc (Linux)")
def test_ctrl_c_on_one_rank_stops_every_rank_at_the_same_step_with_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    job = subprocess.Popen([MPIEXEC, "-n", "2", *SCRATCHGAN, "train", "--distributed", "--steps", "100000",
                            "--batch-size", "16", "--log-every", "1", "--quiet", "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.time() + TIMEOUT
        while time.time() < deadline and not ((out / "metrics.jsonl").is_file()
                                              and len((out / "metrics.jsonl").read_text().splitlines()) >= 3):
            time.sleep(0.2)
        pid = _rank_pid(job.pid, 1)
        assert pid is not None, "rank 1 not found"
        os.kill(pid, signal.SIGINT)  # only rank 1 is interrupted
        stdout, stderr = job.communicate(timeout=TIMEOUT)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 130, stderr
    step = int(load_checkpoint(out / "checkpoint.npz")["step"])
    assert f"interrupted at step {step}: checkpoint saved" in stdout
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == step


@needs_mpi
def test_benchmark_script_times_one_and_two_ranks(tmp_path):
    script = TESTS.parent / "benchmarks" / "data_parallel.py"
    out = tmp_path / "dp.json"
    done = subprocess.run([sys.executable, script, "--models", "mlp", "--repeats", "1", "--steps", "3", "--no-model",
                           "--json", out], capture_output=True, text=True, timeout=TIMEOUT, env=ENV)
    assert done.returncode == 0, done.stderr
    assert "| mlp | 1 | 128 (128) |" in done.stdout and "| mlp | 2 | 128 (64) |" in done.stdout
    two = json.loads(out.read_text())["models"]["mlp"]["rows"]["2"]
    assert two["transport"] == "mpi" and two["allreduce_seconds_per_step"] > 0
    # every gradient of both networks and the step's 4 record values (d_loss, d_real, d_fake; g_loss), in float32
    assert two["bytes_per_step"] == (two["parameters"] + 4) * 4


def test_ring_allreduce_model():
    sys.path.insert(0, str(TESTS.parent / "benchmarks"))
    import data_parallel  # noqa: PLC0415

    assert data_parallel.ring_seconds(1e6, 1, 1e9, 1e-5) == 0.0
    # 2 ranks: each sends half the buffer twice (reduce-scatter, all-gather), 2 latencies
    assert data_parallel.ring_seconds(1e6, 2, 1e9, 1e-5) == pytest.approx(1e-3 + 2e-5)
    assert data_parallel.ring_seconds(1e6, 8, 1e9, 0.0) == pytest.approx(2 * 7 / 8 * 1e-3)


# --------------------------------------------------------------------------- one GPU per rank (no GPU needed)


def test_ranks_that_would_share_a_gpu_are_named_with_the_counts_and_the_two_ways_out():
    # (rank, device count, physical GPU, error) of every rank of a machine; every rank takes GPU local_rank
    why = _gpu_sharing_problem([(0, 1, "GPU 0", None), (1, 1, "GPU 0", None)], "node7")
    assert ("2 ranks run on node7, which shows 1 GPU to each of them, so ranks [0, 1] would share one GPU (GPU 0); "
            "NCCL needs one GPU per rank: start at most 1 rank per machine (mpiexec -n), or give each rank a GPU of "
            "its own with CUDA_VISIBLE_DEVICES") in why
    why = _gpu_sharing_problem([(4, 2, "a", None), (5, 2, "b", None), (6, 2, "a", None)], "n")
    assert "3 ranks run on n, which shows 2 GPUs to each of them, so ranks [4, 6] would share" in why
    assert "at most 2 ranks per machine" in why
    assert _gpu_sharing_problem([(0, 4, "a", None), (1, 4, "b", None)], "n") is None
    # CUDA_VISIBLE_DEVICES per rank: each rank sees one GPU, another one (fewer GPUs per rank than ranks is fine)
    assert _gpu_sharing_problem([(0, 1, "0000:1a:00.0", None), (1, 1, "0000:1b:00.0", None)], "n") is None
    # a rank that cannot use CuPy stops the others too, instead of leaving them waiting
    assert _gpu_sharing_problem([(0, 1, "a", None), (1, 0, None, "RuntimeError: no GPU")], "n") == \
        "rank 1 (on n) cannot use CuPy: RuntimeError: no GPU"


def test_the_gpu_a_rank_takes_is_the_physical_one_whatever_cuda_visible_devices_renumbered(monkeypatch):
    class Device:  # a CuPy without Device.pci_bus_id
        def __init__(self, index):
            self.id = index

    class WithBus(Device):
        pci_bus_id = property(lambda self: f"0000:{0x1a + self.id:02x}:00.0")

    def cupy_with(device):
        return types.SimpleNamespace(cuda=types.SimpleNamespace(Device=device))

    assert _gpu_identity(cupy_with(WithBus), 1) == "0000:1b:00.0"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert _gpu_identity(cupy_with(Device), 1) == "GPU 1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 1")
    assert [_gpu_identity(cupy_with(Device), i) for i in (0, 1)] == ["GPU 3", "GPU 1"]


# --------------------------------------------------------------------------- NCCL (CuPy arrays)

needs_gpu = pytest.mark.skipif(not sg.cupy_available(), reason="NCCL runs on CuPy arrays: needs CuPy and a GPU")


def _is_standin() -> bool:
    if not sg.cupy_available():
        return False
    import cupy  # noqa: PLC0415

    return bool(getattr(cupy, "IS_STANDIN", False))


needs_standin = pytest.mark.skipif(not _is_standin(), reason="a rule of the CuPy stand-in's NCCL (tests/cupy_standin)")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.skipif(not HAVE_MPI4PY,
                    reason="the start-up exchange is MPI: needs mpi4py (pip install \"scratchgan[mpi]\")")
def test_nccl_reduces_cupy_gradients_in_one_buffer_on_one_rank():
    comm = Communicator(backend="cupy")
    if comm.transport != "nccl":
        pytest.skip("this CuPy finds no NCCL library (the gradients would go through the host and MPI)")
    assert (comm.size, comm.local_size, comm.device) == (1, 1, 0)
    sg.set_backend("cupy")
    try:
        a = sg.Tensor(np.zeros((3, 2)), requires_grad=True)
        a.grad = sg.Tensor(np.arange(6.0).reshape(3, 2))
        record = comm.allreduce_gradients([a], {"loss": 1.5})
        assert np.array_equal(a.grad.numpy(), np.arange(6.0).reshape(3, 2)) and record == {"loss": 1.5}
        assert comm.allreduce_bytes == 7 * 8
        net = sg.nn.Linear(2, 3)
        before = net.weight.numpy().copy()
        comm.broadcast_module(net)
        assert np.array_equal(net.weight.numpy(), before)
    finally:
        sg.set_backend("numpy")


@pytest.mark.gpu
@needs_gpu
@needs_mpi
def test_one_rank_over_nccl_takes_bitwise_the_steps_of_one_process_on_the_gpu(tmp_path):
    done = mpirun(sys.executable, WORKER, "nccl", tmp_path, n=1)
    assert done.returncode == 0, done.stderr
    found = json.loads((tmp_path / "rank0.json").read_text())
    assert found["transport"] == "nccl" and found["device"] == 0
    c = found["collectives"]
    assert c["mean_a"] == np.arange(6.0).reshape(2, 3).tolist() and c["mean_b"] == [0.0] * 4
    assert c["record"] == {"loss": 0.0, "name": "kept"} and c["device_record"] == ["Tensor", 0.0, 3.0]
    assert c["calls"] == 1 and c["bytes"] == (6 + 4 + 1) * 8 and c["any"] == [True, False]
    assert c["lr"] == 1e-3 and c["disagreement"] is None
    # the GPU draws its own random stream (scratchgan.backend.device_rng): the reference is one process on the GPU, and
    # one rank's reduction (a copy, divided by 1) leaves it bitwise as it was
    want = reference("toy", tmp_path, backend="cupy")
    with np.load(tmp_path / "toy-rank0.npz") as got:
        got = dict(got)
    assert all(np.array_equal(got[k], want[k]) for k in want if k != "digests"), \
        [k for k in want if k != "digests" and not np.array_equal(got[k], want[k])]


@pytest.mark.gpu
@needs_gpu
@needs_mpi
def test_two_ranks_on_one_gpu_stop_at_start_up_on_every_rank_with_the_way_out(tmp_path):
    # one GPU visible: the stand-in's count, and on a GPU machine the first GPU only
    one_gpu = {"CUPY_STANDIN_DEVICES": "1", "CUDA_VISIBLE_DEVICES": "0"}
    start = time.perf_counter()
    done = mpirun(*SCRATCHGAN, "train", "--distributed", "--backend", "cupy", "--steps", "2", "--batch-size", "16",
                  "--quiet", "--out", tmp_path / "run", env=one_gpu)
    assert done.returncode != 0
    for rank in range(2):  # every rank says it, before any step: no plan line (it times a step), no run folder
        assert (f"scratchgan: error: --backend cupy on 2 ranks cannot start (rank {rank} stops): 2 ranks run on "
                in done.stderr), done.stderr
    assert done.stderr.count("which shows 1 GPU to each of them, so ranks [0, 1] would share one GPU") == 2
    assert done.stderr.count("start at most 1 rank per machine") == 2 and "CUDA_VISIBLE_DEVICES" in done.stderr
    assert "Traceback" not in done.stderr and "plan:" not in done.stdout
    assert not (tmp_path / "run").exists()
    assert time.perf_counter() - start < 60


def _gpu_count() -> int:
    if not sg.cupy_available():
        return 0
    import cupy  # noqa: PLC0415

    return cupy.cuda.runtime.getDeviceCount()


@pytest.mark.gpu
@needs_mpi
@pytest.mark.skipif(_is_standin() or _gpu_count() < 2, reason="NCCL between 2 ranks needs 2 GPUs (one rank per GPU)")
def test_two_ranks_over_nccl_take_the_steps_of_one_process_on_the_gpu(tmp_path):
    done = mpirun(sys.executable, WORKER, "nccl", tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "rank0.json").read_text())["transport"] == "nccl"
    want = reference("toy", tmp_path, backend="cupy")  # the GPU's own random stream (scratchgan.backend.device_rng)
    with np.load(tmp_path / "toy-rank0.npz") as got:
        assert_close(dict(got), want, rtol=1e-8)  # a GPU's float64 sums are ordered otherwise again


# --------------------------------------------------------------------------- the stand-in's one-rank NCCL


@pytest.fixture
def nccl():
    """The stand-in's ``cupy.cuda.nccl`` and a one-rank communicator on it."""
    import cupy  # noqa: PLC0415
    from cupy.cuda import nccl  # noqa: PLC0415

    return cupy, nccl, nccl.NcclCommunicator(1, nccl.get_unique_id(), 0)


def _ptrs(*arrays):
    return [a.data.ptr for a in arrays]


@pytest.mark.gpu
@needs_standin
def test_standin_nccl_one_rank_all_reduce_copies_count_elements_as_one_launch(nccl):
    cupy, nccl, comm = nccl
    send, recv = cupy.arange(6, dtype=cupy.float32), cupy.zeros(6, dtype=cupy.float32)
    assert (comm.size(), comm.rank_id(), comm.device_id()) == (1, 0, 0)
    cupy.standin.reset()
    comm.allReduce(*_ptrs(send, recv), 4, nccl.NCCL_FLOAT32, nccl.NCCL_SUM, cupy.cuda.get_current_stream().ptr)
    assert cupy.standin.counts()["launches"] == 1
    assert recv.get().tolist() == [0, 1, 2, 3, 0, 0]  # count elements of the datatype's size, not bytes
    comm.allReduce(*_ptrs(send[2:], send), 2, nccl.NCCL_FLOAT64, nccl.NCCL_AVG, 0)  # 2 float64 = 4 float32
    assert send.get().tolist() == [2, 3, 4, 5, 4, 5]


@pytest.mark.gpu
@needs_standin
def test_standin_nccl_refuses_what_nccl_would_refuse_or_hang_on(nccl):
    cupy, nccl, comm = nccl
    uid = nccl.get_unique_id()
    assert len(uid) == nccl.NCCL_UNIQUE_ID_BYTES and all(-128 <= b < 128 for b in uid)
    with pytest.raises(RuntimeError, match=r"one rank only: NcclCommunicator\(ndev=2, \.\.\., rank=1\) would wait"):
        nccl.NcclCommunicator(2, uid, 1)
    with pytest.raises(nccl.NcclError, match="NCCL_ERROR_INVALID_ARGUMENT: invalid argument; Invalid rank requested"):
        nccl.NcclCommunicator(1, uid, 1)
    with pytest.raises(nccl.NcclError, match="not made by get_unique_id in this process"):
        nccl.NcclCommunicator(1, tuple([0] * 128), 0)
    with pytest.raises(TypeError, match="expected tuple, got list"):
        nccl.NcclCommunicator(1, list(uid), 0)
    send = cupy.zeros(4)
    host = np.zeros(4)
    with pytest.raises(RuntimeError, match="cudaErrorIllegalAddress"):  # a host pointer
        comm.allReduce(send.data.ptr, host.ctypes.data, 4, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 0)
    with pytest.raises(RuntimeError, match="cudaErrorIllegalAddress"):  # past the end of the buffer
        comm.allReduce(*_ptrs(send, send), 5, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 0)
    with pytest.raises(nccl.NcclError, match="invalid type 10"):
        comm.allReduce(*_ptrs(send, send), 4, 10, nccl.NCCL_SUM, 0)
    with pytest.raises(nccl.NcclError, match="invalid reduction operation 5"):
        comm.allReduce(*_ptrs(send, send), 4, nccl.NCCL_FLOAT64, 5, 0)
    with pytest.raises(TypeError):  # Cython's intptr_t argument
        comm.allReduce(float(send.data.ptr), send.data.ptr, 4, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 0)
    with pytest.raises(OverflowError):  # size_t
        comm.allReduce(*_ptrs(send, send), -1, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 0)
    with pytest.raises(nccl.NcclError, match="NCCL_ERROR_INVALID_USAGE: invalid usage; ncclGroupEnd: not in a group"):
        nccl.groupEnd()
    comm.destroy()
    with pytest.raises(nccl.NcclError, match="comm argument is NULL"):
        comm.allReduce(*_ptrs(send, send), 4, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 0)


@pytest.mark.gpu
@needs_standin
def test_standin_nccl_runs_a_group_at_its_end_and_a_captured_reduction_at_the_graph_launch(nccl):
    cupy, nccl, comm = nccl
    send, recv = cupy.ones(3), cupy.zeros(3)
    nccl.groupStart()
    comm.allReduce(*_ptrs(send, recv), 3, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 0)
    assert recv.get().tolist() == [0, 0, 0]  # held back until the group ends
    nccl.groupEnd()
    assert recv.get().tolist() == [1, 1, 1]
    stream = cupy.cuda.Stream()
    with stream:
        stream.begin_capture()
        comm.allReduce(*_ptrs(send, recv), 3, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, stream.ptr)
        send *= 5  # recorded too: the reduction at the launch reads what the graph made before it
        comm.allReduce(*_ptrs(send, recv), 3, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, stream.ptr)
        graph = stream.end_capture()
    assert recv.get().tolist() == [1, 1, 1] and send.get().tolist() == [1, 1, 1]  # recording ran nothing
    graph.launch()
    assert recv.get().tolist() == [5, 5, 5]
