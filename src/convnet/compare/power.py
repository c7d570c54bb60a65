"""Energy per image: NVML on a GPU, RAPL counters on a CPU, or an honest "not available here".

The notes' second comparison figure plots forward time and power against the batch size. What a
power meter gives is energy over an interval: ``E = integral of P(t) dt`` joules; divided by the
images processed in that interval it is the energy per image, and divided by the interval's
length the mean power ``P = E / t`` watts.

- **NVML** (``pip install 'convnet[power]'``, the ``nvidia-ml-py`` package, imported as
  ``pynvml``): a thread reads the board's power draw (``nvmlDeviceGetPowerUsage``, milliwatts)
  every ``interval`` seconds while the timed loop runs; the samples are integrated with the
  trapezoid rule. One sample is also taken at ``start`` and at ``stop`` so that a loop shorter
  than the interval still has two.
- **RAPL** (Intel, and AMD since Zen, through Linux's powercap): each CPU package has a counter
  ``/sys/class/powercap/intel-rapl:N/energy_uj`` of microjoules since some moment, wrapping at
  ``max_energy_range_uj``. The energy of an interval is the difference of two readings (plus
  the range when it wrapped), summed over the packages. Sub-zones (``intel-rapl:N:M``: cores,
  DRAM) are parts of their package and are not added again. Many kernels make ``energy_uj``
  readable by root only.

Both meters see the whole device: a GPU's board, a CPU package's every core. Other work running
at the same time is counted too, so measure on an otherwise idle machine.

:func:`open_meter` returns a meter for the device, or ``None`` and the reason why not.
"""

from __future__ import annotations

import importlib
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

NOT_AVAILABLE = "not available here"
RAPL_ROOT = Path("/sys/class/powercap")
_PACKAGE = re.compile(r"^intel-rapl:\d+$")  # a package zone, not a sub-zone like intel-rapl:0:0


@dataclass(frozen=True)
class Energy:
    """What a meter measured over one interval: ``joules`` in ``seconds``."""

    joules: float
    seconds: float

    @property
    def watts(self) -> float:
        """Mean power, ``E / t``."""
        return self.joules / self.seconds if self.seconds > 0 else 0.0


class Meter(Protocol):
    source: str  # what is measured, e.g. "NVML, GPU 0 board power"

    def start(self) -> None: ...

    def stop(self) -> Energy: ...

    def close(self) -> None: ...


class NvmlMeter:
    """Samples one GPU's power draw in a background thread; ``stop`` integrates the samples."""

    def __init__(self, nvml, handle, name: str, interval: float = 0.01) -> None:
        self.nvml, self.handle, self.interval = nvml, handle, interval
        self.source = f"NVML, {name} board power sampled every {interval * 1000:g} ms"
        self._samples: list[tuple[float, float]] = []  # (time s, power W)
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        watts = self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0  # NVML gives milliwatts
        self._samples.append((time.perf_counter(), watts))

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self._sample()

    def start(self) -> None:
        self._samples = []
        self._done.clear()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="convnet-nvml", daemon=True)
        self._thread.start()

    def stop(self) -> Energy:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        return integrate(self._samples)

    def close(self) -> None:
        self.nvml.nvmlShutdown()


def integrate(samples: list[tuple[float, float]]) -> Energy:
    """Trapezoid rule over ``(time s, power W)`` samples: ``sum (t1 - t0) (P0 + P1) / 2`` J."""
    samples = sorted(samples)
    joules = sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(samples, samples[1:]))
    seconds = samples[-1][0] - samples[0][0] if samples else 0.0
    return Energy(joules, seconds)


@dataclass(frozen=True)
class RaplZone:
    path: Path
    name: str
    max_uj: int  # the counter wraps to 0 after this value


class RaplMeter:
    """Reads every package's RAPL energy counter at ``start`` and ``stop``."""

    def __init__(self, zones: list[RaplZone]) -> None:
        self.zones = zones
        self.source = "RAPL, " + " + ".join(z.name for z in zones) + " energy counters"
        self._start: list[int] = []
        self._t0 = 0.0

    def _read(self) -> list[int]:
        return [int((z.path / "energy_uj").read_text()) for z in self.zones]

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._start = self._read()

    def stop(self) -> Energy:
        end = self._read()
        seconds = time.perf_counter() - self._t0
        micro = sum(counter_delta(a, b, z.max_uj) for a, b, z in zip(self._start, end, self.zones))
        return Energy(micro / 1e6, seconds)

    def close(self) -> None:
        pass


def counter_delta(start: int, end: int, max_value: int) -> int:
    """``end - start`` for a counter that wraps to 0 at ``max_value`` (at most one wrap):
    ``end + max_value - start`` after a wrap, as the powercap documentation counts it."""
    return end - start if end >= start else end + max_value - start


def rapl_zones(root: str | Path = RAPL_ROOT) -> tuple[list[RaplZone], str]:
    """The readable package zones under ``root``, or ``[]`` and why there are none."""
    root = Path(root)
    dirs = (
        sorted(p for p in root.glob("intel-rapl:*") if _PACKAGE.match(p.name))
        if root.is_dir()
        else []
    )
    if not dirs:
        return [], f"no RAPL package counters under {root}"
    zones = []
    for d in dirs:
        try:
            int((d / "energy_uj").read_text())
            max_uj = int((d / "max_energy_range_uj").read_text())
        except PermissionError:
            return [], f"{d / 'energy_uj'} is readable by root only"
        except (OSError, ValueError) as e:
            return [], f"{d / 'energy_uj'} cannot be read ({e})"
        name = (d / "name").read_text().strip() if (d / "name").is_file() else d.name
        zones.append(RaplZone(d, name, max_uj))
    return zones, ""


def _nvml_meter(index: int, pci_bus_id: str | None, interval: float) -> tuple[Meter | None, str]:
    try:
        nvml = importlib.import_module("pynvml")
    except ImportError:
        return None, "NVML needs nvidia-ml-py: pip install 'convnet[power]'"
    try:
        nvml.nvmlInit()
    except Exception as e:  # pynvml raises its own NVMLError types
        return None, f"NVML did not start ({e})"
    try:
        handle = None
        if pci_bus_id and hasattr(nvml, "nvmlDeviceGetHandleByPciBusId"):
            # NVML numbers GPUs its own way (CUDA_VISIBLE_DEVICES does not renumber them);
            # the PCI address names the one torch uses
            try:
                handle = nvml.nvmlDeviceGetHandleByPciBusId(pci_bus_id)
            except Exception:
                handle = None
        if handle is None:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
        nvml.nvmlDeviceGetPowerUsage(handle)  # some boards do not report power
    except Exception as e:
        nvml.nvmlShutdown()
        return None, f"NVML cannot read GPU {index}'s power ({e})"
    return NvmlMeter(nvml, handle, f"GPU {index}", interval), ""


def open_meter(
    device: str, *, rapl_root: str | Path = RAPL_ROOT, interval: float = 0.01
) -> tuple[Meter | None, str]:
    """A power meter for ``device`` ("cpu", "cuda", "cuda:1"), or ``None`` and why not.

    ``rapl_root`` is where the powercap zones live (a parameter so tests can give a fake tree);
    ``interval`` is NVML's sampling period in seconds.
    """
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        bus = None
        try:
            import torch

            if torch.cuda.is_available():
                props = torch.cuda.get_device_properties(index)
                bus = "{:08x}:{:02x}:{:02x}.0".format(
                    getattr(props, "pci_domain_id", 0),
                    getattr(props, "pci_bus_id", 0),
                    getattr(props, "pci_device_id", 0),
                )
        except (ImportError, RuntimeError, AssertionError):
            bus = None
        return _nvml_meter(index, bus, interval)
    zones, why = rapl_zones(rapl_root)
    if not zones:
        return None, why
    return RaplMeter(zones), ""
