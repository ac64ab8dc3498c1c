"""A stopped lab component counts as gone only once it has let go of its ports."""

import subprocess
import sys
import time
from pathlib import Path

from federator.lab.process import ProcessRecord, _start_ticks, port_in_use

# The main thread leaves first (as a Go program's does when it is killed) while another thread
# still runs and the process still holds its listening socket.
LINGERING = """
import ctypes, socket, sys, threading
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
print(listener.getsockname()[1], flush=True)
threading.Thread(target=sys.stdin.read).start()
ctypes.CDLL(None).pthread_exit(None)
"""


def test_a_process_whose_main_thread_left_is_exiting_and_holds_its_port() -> None:
    child = subprocess.Popen([sys.executable, "-c", LINGERING], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdin is not None
    port = int(child.stdout.readline())
    stat = Path(f"/proc/{child.pid}/stat")
    while _start_ticks(child.pid) is not None:  # until the main thread has left
        time.sleep(0.01)  # between polls
    record = ProcessRecord(child.pid, int(stat.read_text().rsplit(")", 1)[1].split()[19]))
    assert not record.alive()
    assert record.exiting()
    assert port_in_use(port)

    child.stdin.close()  # the last thread ends
    child.wait()
    child.stdout.close()
    assert not record.exiting()
    assert not port_in_use(port)


def test_a_running_process_is_alive_not_exiting() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    ticks = _start_ticks(child.pid)
    assert ticks is not None
    record = ProcessRecord(child.pid, ticks)
    assert record.alive() and not record.exiting()
    assert child.stdin is not None
    child.stdin.close()
    child.wait()
    assert not record.alive() and not record.exiting()
