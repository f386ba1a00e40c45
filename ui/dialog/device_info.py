"""The device line under the device combo; never fails the dialog."""

from __future__ import annotations

from ...engine.errors import MapRefinerError
from ..installer.deps import check_dependencies
from ..jobs.torch_library import load_torch_library


def device_summary() -> str:
    try:
        check_dependencies()
    except MapRefinerError:
        return "torch is not installed"
    load_torch_library()
    from ...engine.device import describe_devices

    return describe_devices()
