"""How the node's process stops: the first SIGINT or SIGTERM ends it, later ones cannot interrupt the shutdown.

Ctrl-C in the terminal of `ros2 launch` reaches the node twice when launch's stdin is not a terminal
(launch then forwards SIGINT to a process group the terminal already reached): a second
KeyboardInterrupt would abort destroy_node() with a traceback. Free of heavy imports: used by
`python -m fast_scnn_ros` before torch and rclpy load.
"""

from __future__ import annotations

import importlib
import signal

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_stopping = False


class StopRequested(BaseException):
    """Raised in the main thread by the first SIGINT or SIGTERM (a BaseException, like KeyboardInterrupt).

    Not KeyboardInterrupt itself: one that passed through an extension module's call back into Python
    makes CPython exit killed by SIGINT (-2) after finalising, even when caught (seen during start-up).
    """


def _on_signal(signum: int, frame: object) -> None:
    global _stopping
    if not _stopping:
        _stopping = True
        raise StopRequested


def stopped_by_signal() -> bool:
    """Whether a SIGINT or SIGTERM has asked this process to stop."""
    return _stopping


def stop_on_first_signal() -> None:
    """SIGINT and SIGTERM: the first raises StopRequested (ends spin), later ones are ignored.

    rclpy's own handlers, installed by rclpy.init() on top of these, chain to them and wake the executor.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_signal)


def run_main(module: str) -> int:
    """Import `module` (the node's, torch and rclpy: seconds on a small CPU) with SIGINT and SIGTERM held back,
    then run its `main()`; a signal held back is delivered once the node's handling is in place, so Ctrl-C
    while the node is still starting ends it quietly with status 0 as well.

    Once main() returns, SIGINT and SIGTERM are ignored for good: the interpreter's finalisation puts back
    the default handlers of the signals it handled (not of ignored ones), and torch's, ONNX Runtime's and
    Fast DDS's teardown after that takes about a second, in which launch's forwarded second SIGINT killed
    the finished node (exit -2) when it came 0.3 to 1.1 s after the first.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    main = importlib.import_module(module).main
    stop_on_first_signal()
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # a signal held back is delivered now
        return main()
    except StopRequested:  # before main() took over
        return 0
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
