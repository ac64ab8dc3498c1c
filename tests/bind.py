"""A real BIND 9 (`named`) for tests: one primary zone on a loopback port, open to updates
and transfers signed with a test TSIG key, in a directory of its own."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from tests.serving import free_port, terminate

KEY_NAME = "federator-test"
NAMED = shutil.which("named") or "/usr/sbin/named"


class Bind:
    def __init__(self, directory: Path, zone: str, records: str = "",
                 algorithm: str = "hmac-sha256") -> None:
        self.directory = directory
        self.zone = zone
        self.port = free_port()
        self.secret = base64.b64encode(os.urandom(32)).decode()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{zone}.zone").write_text(
            f"$ORIGIN {zone}.\n$TTL 300\n"
            f"@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 30\n"
            f"@ IN NS ns.{zone}.\nns IN A 127.0.0.1\n{records}")
        (directory / "named.conf").write_text(f"""
key "{KEY_NAME}" {{ algorithm {algorithm}; secret "{self.secret}"; }};
controls {{ }};
options {{
    directory "{directory}";
    pid-file "{directory}/named.pid";
    session-keyfile "{directory}/session.key";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    allow-transfer {{ key "{KEY_NAME}"; }};
}};
zone "{zone}" {{
    type primary;
    file "{directory}/{zone}.zone";
    allow-update {{ key "{KEY_NAME}"; }};
}};
""")
        self.log = directory / "named.log"
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                [NAMED, "-g", "-c", str(directory / "named.conf"), "-n", "1"],
                stdout=sink, stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self) -> None:
        query = dns.message.make_query(self.zone, "SOA")
        for _ in range(100):
            if self.process.poll() is not None:
                raise AssertionError(f"named exited: {self.log.read_text()[-2000:]}")
            try:
                reply = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.5)
                if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                    return
            except (OSError, dns.exception.Timeout):
                pass
            time.sleep(0.1)  # between polls
        raise AssertionError(f"named does not answer: {self.log.read_text()[-2000:]}")

    def dig(self, name: str, kind: str = "A") -> list[str]:
        """What the real `dig` says (+short)."""
        done = subprocess.run(["dig", "+short", "+norecurse", "-p", str(self.port),
                               "@127.0.0.1", name, kind], capture_output=True, text=True,
                              check=True, timeout=30)
        return sorted(line for line in done.stdout.splitlines() if line)

    def serial(self) -> int:
        """The zone's SOA serial: BIND counts one more for every UPDATE it applies."""
        soa = self.dig(self.zone, "SOA")
        return int(soa[0].split()[2])

    def stop(self) -> None:
        terminate(self.process, 15)
