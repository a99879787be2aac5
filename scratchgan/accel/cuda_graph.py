"""Capture a whole training step as a CUDA graph and replay it (CuPy backend).

An eager step of a small GAN on a GPU costs hundreds of kernel launches,
each a few microseconds of Python and driver time, and the GPU waits for
them. A CUDA graph records the launches once and replays them with one call.

Usage::

    import scratchgan as sg
    from scratchgan import cuda_graph

    sg.set_backend("cupy")
    real = sg.zeros((B, 784)); z_d = sg.zeros((B, 100)); z_g = sg.zeros((B, 100))

    def step():                       # an ordinary scratchgan training step
        ...                           # reads real, z_d, z_g; calls opt.step()
        return loss_d, loss_g         # tensors to read after each replay

    captured = cuda_graph.capture(step, warmup=3)
    for batch in batches:
        real.data[...] = batch                                  # new inputs go into
        z_d.data[...] = xp.random.standard_normal(z_d.shape, dtype=xp.float32)  # the same buffers
        z_g.data[...] = xp.random.standard_normal(z_g.shape, dtype=xp.float32)
        loss_d, loss_g = captured()   # one launch; the returned tensors hold this step's values

What the step may do, and what it must not:

* It runs with fixed shapes and reads its inputs from tensors that live
  across replays (above: ``real``, ``z_d``, ``z_g``); to feed a new batch,
  write *into* them (``t.data[...] = ...``), never rebind them.
* No value may travel to the host during the capture: no ``float(loss)``,
  ``.item()``, printing a tensor, NaN checks or ``detect_anomaly``. Read the
  returned tensors after the replay instead. The last warm-up call is a
  *rehearsal* with the capture's rules on: scratchgan's own host reads and
  uploads (``backend.to_host``, ``host_scalar``, ``asarray`` of host data:
  the gradient penalties' input checks, label checks of unvouched indices,
  ``Tensor.item``) raise :class:`~scratchgan.backend.CaptureError` there,
  naming what read, before anything is recorded. Pass ``check_inputs=False``
  to the penalties, or check once before capturing.
* Products (``@``, linear layers, convolutions, spectral norm's power
  iteration) of any rank are captured: they go to cuBLAS through ctypes
  (:func:`scratchgan.backend.matmul`), since CuPy's own wrappers refuse a
  capturing stream.
* Random numbers: ``cupy.random`` (cuRAND) cannot be captured. Draw them into
  input buffers before each replay, or inside the step with
  :class:`scratchgan.backend.device_rng.DeviceGenerator`, whose counter lives on the
  device and advances at each replay (the trainer's step does; so does
  ``nn.Dropout(rng=DeviceGenerator(...))``). Dropout with a host generator is
  refused by name.
* ``Trainer.train_step`` on the cupy backend captures for every loss,
  penalty, auxiliary head, conditioning and architecture, with
  ``lr_decay="none"`` (a decaying rate is computed on the host each step:
  refused by name).
* Adam reads its step count and learning rate from GPU memory
  (:mod:`scratchgan.accel.optim_kernels`), so replays apply the right bias
  corrections and ``opt.lr = value`` between replays takes effect. SGD and RMSprop keep the learning rate they had at capture.
  Host-side counters (``opt.step_count``) do not advance during replays;
  ``Adam.state_dict()`` reads the true per-parameter counts back from the GPU.
* The ``warmup`` calls before the capture are real training steps (they
  create the optimizer state and let CuPy compile its kernels); recording
  the capture runs nothing, so after ``capture(step, warmup=k)`` the step has
  run ``k`` times, and each replay is one more.
* Loading a checkpoint replaces arrays the graph points at: capture again
  after loading.

Memory the step allocates during the capture comes from a private CuPy
memory pool that lives as long as the :class:`CapturedStep`; nothing outside
the graph is ever handed those blocks, so a replay cannot overwrite a tensor
made elsewhere (the same reason PyTorch gives each graph its own pool).
"""

from __future__ import annotations

from .. import backend

__all__ = ["CapturedStep", "capture"]


class CapturedStep:
    """A recorded training step: call it to replay the whole step with one launch.

    Attributes
    ----------
    outputs : object
        What the step function returned at capture: tensors whose arrays each
        replay overwrites with that replay's values.
    replays : int
        How many times the graph has been launched.
    """

    def __init__(self, graph, pool, stream, outputs):
        self._graph = graph
        self._pool = pool  # keeps the graph's memory alive and out of everyone else's reach
        self._stream = stream
        self.outputs = outputs
        self.replays = 0

    def __call__(self):
        """Launch the graph on the current stream (ordered after the input copies) and return ``outputs``."""
        cupy = backend._import_cupy()
        self._graph.launch(cupy.cuda.get_current_stream())
        self.replays += 1
        return self.outputs

    replay = __call__

    def __repr__(self) -> str:
        return f"CapturedStep(replays={self.replays})"


_ADVICE = (
    "a captured step must not read values back to the host (float(loss), .item(), print, NaN checks, "
    "detect_anomaly), draw random numbers inside (draw them into input buffers before each replay), "
    "or use operations CuPy cannot capture (cuSOLVER, cupy.random); see scratchgan.accel.cuda_graph"
)


def capture(step_fn, warmup: int = 3) -> CapturedStep:
    """Run ``step_fn`` ``warmup`` times, then record one call of it as a CUDA graph.

    Parameters
    ----------
    step_fn : callable
        A training step taking no arguments; it reads its inputs from tensors
        that persist between calls. Whatever it returns is kept as
        :attr:`CapturedStep.outputs`.
    warmup : int
        Eager calls before the capture (>= 1): they build the optimizer
        state, compile CuPy's kernels and let cuBLAS set up its workspace on
        the capture stream, none of which may happen inside a capture.

    Returns
    -------
    CapturedStep

    Raises
    ------
    TypeError, ValueError
        For a step that is not callable or a warmup that is not an int >= 1.
    RuntimeError
        When the backend is not CuPy, or when the step does something that
        cannot be captured (the message says what to change).
    """
    if not callable(step_fn):
        raise TypeError(f"cuda_graph.capture: step_fn must be callable, got {type(step_fn).__name__}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
        raise ValueError(f"cuda_graph.capture: warmup must be an int >= 1, got {warmup!r}")
    if backend.get_backend() != "cupy":
        raise RuntimeError("cuda_graph.capture needs the cupy backend (set_backend('cupy') on a machine with an "
                           "NVIDIA GPU); on the CPU, call the step function directly")
    cupy = backend._import_cupy()
    backend.prepare_capture()  # the cuBLAS handle and workspace captured products use, made outside the capture
    pool = cupy.cuda.MemoryPool()
    stream = cupy.cuda.Stream(non_blocking=True)
    # the capture stream starts after everything queued so far (e.g. the copies of the first inputs)
    stream.wait_event(cupy.cuda.get_current_stream().record())
    with stream, cupy.cuda.using_allocator(pool.malloc):
        for _ in range(warmup - 1):
            step_fn()
        _rehearse(step_fn)
        stream.synchronize()
        stream.begin_capture()
        try:
            backend._capturing = True
            outputs = step_fn()
        except Exception as exc:
            try:
                stream.end_capture()  # leave the stream usable; the half-made graph is dropped
            except Exception:  # noqa: BLE001 - the capture is already invalid; the first error is the one to show
                pass
            raise RuntimeError(f"cuda_graph.capture: the step could not be captured ({type(exc).__name__}: {exc}); "
                               f"{_ADVICE}") from exc
        finally:
            backend._capturing = False
        graph = stream.end_capture()
    cupy.cuda.get_current_stream().wait_event(stream.record())
    return CapturedStep(graph, pool, stream, outputs)


def _rehearse(step_fn) -> None:
    """The last warm-up call, with the capture's rules on: what cannot be captured is refused here, by name.

    scratchgan's own host reads, uploads and synchronisations (through
    :func:`scratchgan.backend.to_host` and friends) raise
    :class:`~scratchgan.backend.CaptureError` in this call, and the products
    and random draws take the routes they will take in the capture. The step
    really runs (it is a training step like the other warm-up calls), so a
    refusal here costs nothing but that step, and nothing has been recorded.
    """
    backend._rehearsing = True
    try:
        step_fn()
    except backend.CaptureError as exc:
        raise backend.CaptureError(f"cuda_graph.capture: the step cannot be captured, nothing was recorded: {exc}. "
                                   f"{_ADVICE}") from None
    finally:
        backend._rehearsing = False
