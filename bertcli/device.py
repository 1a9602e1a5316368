"""Device and dtype resolution: one table, one function.

``resolve(device, dtype)`` turns the user's ``--device``/``--dtype`` strings into a
``(torch.device, torch.dtype)`` pair, checking availability up front so that a
missing GPU is reported before any model is loaded.

Rules (the same for inference and training):

* ``auto`` device: CUDA if available, then MPS, then CPU.
* ``auto`` dtype: float32 everywhere. Reduced precision is always opt-in because it
  changes results (see the performance notes in the README).
* int8 is CPU-only and inference-only (the native encoder's oneDNN int8 path).
* float16 is refused on CPU (most CPU kernels for it are slow or missing); MPS has no
  float64 and limited bfloat16, so MPS models are cast to float32 unless float16 is asked.
"""

from __future__ import annotations

from .errors import DeviceError

DTYPES = {
    "float32": "float32", "fp32": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "int8": "int8",
}
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
DTYPE_CHOICES = ("auto", "float32", "float16", "bfloat16", "int8")


def resolve(device: str = "auto", dtype: str = "auto"):
    """Resolve ``--device`` and ``--dtype``.

    Args:
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        dtype: ``auto``, ``float32``, ``float16``, ``bfloat16`` (aliases fp32/fp16/bf16) or
            ``int8`` (CPU inference only: int8 weights and activations in the encoder's matrix
            products, :data:`bertcli.native.INT8`; returned as ``torch.int8``).

    Returns:
        ``(torch.device, torch.dtype)``.

    Raises:
        DeviceError: unknown name, device not available (with a ``--device cpu`` hint),
            or float16 asked on CPU.
    """
    import torch

    name = (device or "auto").strip().lower()
    if name == "auto" and (dtype or "").strip().lower() == "int8":
        name = "cpu"  # the only device with int8 kernels here
    if name == "auto":
        if torch.cuda.is_available():
            dev = torch.device("cuda")
        elif _mps_available():
            dev = torch.device("mps")
        else:
            dev = torch.device("cpu")
    elif name == "cpu":
        dev = torch.device("cpu")
    elif name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device '{device}' is not available: this torch build or machine has no CUDA GPU",
                              "try --device cpu")
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise DeviceError(f"invalid device '{device}'", "use cuda or cuda:N") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device '{device}' does not exist: {torch.cuda.device_count()} CUDA device(s) found",
                              "try --device cuda:0 or --device cpu")
    elif name == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' is not available on this machine", "try --device cpu")
        dev = torch.device("mps")
    else:
        raise DeviceError(f"unknown device '{device}'", "use auto, cpu, cuda, cuda:N or mps")

    dname = (dtype or "auto").strip().lower()
    if dname == "auto":
        dt = torch.float32
    elif dname in DTYPES:
        dt = getattr(torch, DTYPES[dname])
    else:
        raise DeviceError(f"unknown dtype '{dtype}'", "use auto, float32, float16, bfloat16 or int8")
    if dt == torch.int8 and dev.type != "cpu":
        raise DeviceError(f"--dtype int8 runs on CPU only (oneDNN's int8 kernels); device '{dev}' has none here",
                          "use --device cpu, or --dtype float16/bfloat16 on a GPU")
    if dev.type == "cpu" and dt == torch.float16:
        raise DeviceError("float16 is not supported on CPU", "use --dtype bfloat16 or float32 on CPU")
    if dev.type == "mps" and dt == torch.bfloat16:
        # bfloat16 support on MPS depends on the macOS version; float32 is always right.
        dt = torch.float32
    return dev, dt


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
