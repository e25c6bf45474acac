#!/usr/bin/env python3
"""A small asyncio echo server, one of the peers in bench/echo.sh.

Usage: python3 bench/asyncio_echo.py PORT   (binds 127.0.0.1; PORT 0 picks a free one)
Prints "listening on tcp 127.0.0.1:PORT" once bound; SIGTERM stops it.
Uses asyncio.Protocol (no streams) with TCP_NODELAY: the plain, fast way to write it.
"""

import asyncio
import signal
import socket
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        return False  # close the transport


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", port, backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on tcp 127.0.0.1:{bound}", flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
