#!/usr/bin/env python3
"""link-proxy.py LISTEN_PORT TARGET_PORT ONE_WAY_MS

A TCP forwarder on 127.0.0.1 for the slow-link tests: every chunk it reads is passed on
ONE_WAY_MS milliseconds later, in order and with flow control, in both directions (a round
trip of twice that). Stopping it with SIGSTOP and going on with SIGCONT makes a link that
stalls and comes back; neither side sees a close meanwhile. It prints "ready" once it
listens."""
import asyncio
import sys
import time

listen_port, target_port, delay = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000.0


async def forward(reader, writer):
    queue = asyncio.Queue(maxsize=64)

    async def take():
        while True:
            chunk = await reader.read(65536)
            await queue.put((time.monotonic() + delay, chunk))
            if not chunk:
                return

    async def give():
        while True:
            due, chunk = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                try:
                    writer.write_eof()
                except OSError:
                    pass
                return
            writer.write(chunk)
            await writer.drain()

    await asyncio.gather(take(), give(), return_exceptions=True)


async def connection(client_reader, client_writer):
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(forward(client_reader, server_writer), forward(server_reader, client_writer),
                         return_exceptions=True)
    for w in (client_writer, server_writer):
        try:
            w.close()
        except OSError:
            pass


async def main():
    server = await asyncio.start_server(connection, "127.0.0.1", listen_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
