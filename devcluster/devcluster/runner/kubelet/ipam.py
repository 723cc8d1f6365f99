"""Per-pod loopback addresses (127.0.x.y), so that replicas listen on the same ports."""

from __future__ import annotations

import ipaddress
import socket


class AddressPool:
    """Hands out addresses of a loopback network in turn, so that a freed address is
    reused last; an address whose ports are taken (another run) is skipped."""

    def __init__(self, network: str, reserved: set[str]) -> None:
        self.network = ipaddress.IPv4Network(network)
        if not self.network.is_loopback:
            raise ValueError(f"pod network {network} is not a loopback network")
        self.reserved = set(reserved)
        self.in_use: dict[str, str] = {}  # address -> pod uid
        self._hosts = [
            str(a)
            for a in self.network.hosts()
            if str(a).rsplit(".", 1)[1] not in ("0", "1", "255")
        ]
        self._cursor = 0

    def allocate(self, owner: str, ports: list[int]) -> str:
        for step in range(len(self._hosts)):
            address = self._hosts[(self._cursor + step) % len(self._hosts)]
            if address in self.in_use or address in self.reserved:
                continue
            if all(_free(address, port) for port in ports):
                self._cursor = (self._cursor + step + 1) % len(self._hosts)
                self.in_use[address] = owner
                return address
        raise RuntimeError(f"no free address left in {self.network}")

    def release(self, address: str) -> None:
        self.in_use.pop(address, None)


def _free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True
